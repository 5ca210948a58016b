"""Calls a running github-stats server through a client that openapi-python-client generated
from the server's own spec (driven by tests/api/openapi.rs, which checks the results).

Usage: openapi_client.py BASE_URL PACKAGE CALLS_JSON

CALLS_JSON is a list of {"tag", "operation", "args", "datetime_args"}: the generated module
PACKAGE.api.<tag>.<operation> is called with `args`, those named in `datetime_args` turned
into datetimes first. One JSON line is printed per call:
{"tag", "operation", "args", "status", "model", "round_trip", "error"}, where `model` is the
class the client read the answer into, `round_trip` whether that model gives back the exact
JSON the server sent (date-times compared as instants), and `error` the exception the client raised reading it, if any.
"""

import datetime
import importlib
import json
import sys
import traceback


def model_name(parsed):
    if isinstance(parsed, list):
        return "list[" + ",".join(sorted({model_name(p) for p in parsed})) + "]"
    if isinstance(parsed, bytes):
        return "bytes"
    return type(parsed).__name__


def as_json(parsed):
    if isinstance(parsed, list):
        return [as_json(p) for p in parsed]
    return parsed.to_dict()


def same_instants(value):
    """`value` with every RFC 3339 date-time string read as a datetime: the generated models
    write `+00:00` where the server writes `Z`, the same instant."""
    if isinstance(value, dict):
        return {k: same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_instants(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def main():
    base_url, package, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client_module = importlib.import_module(package)
    client = client_module.Client(base_url=base_url, raise_on_unexpected_status=True)
    for call in calls:
        result = dict(call)
        try:
            module = importlib.import_module(
                f"{package}.api.{call['tag']}.{call['operation']}"
            )
            args = dict(call["args"])
            for name in call.get("datetime_args", []):
                args[name] = datetime.datetime.fromisoformat(args[name])
            response = module.sync_detailed(client=client, **args)
            result["status"] = int(response.status_code)
            result["model"] = model_name(response.parsed)
            if isinstance(response.parsed, bytes) or response.parsed is None:
                result["round_trip"] = None
            else:
                result["round_trip"] = same_instants(
                    as_json(response.parsed)
                ) == same_instants(json.loads(response.content))
        except Exception:  # what the generated client raised reading the answer
            result["error"] = traceback.format_exc()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
