// The github-stats dashboard: counts, chart, PR average and health, from the server's own API.
// No framework and nothing from the network: this file, the page and its stylesheet are served
// by the binary. Every value from the API is shown through textContent, never as HTML; the one
// piece of markup inserted is the chart, parsed as SVG (the server escapes its text).
"use strict";

const EVENT_TYPES = ["WatchEvent", "PullRequestEvent", "IssuesEvent"];

const state = {
  timer: null,
  generation: 0,
};

// Uncaught errors end up in the DOM too, so that a headless browser test sees them.
function recordError(message) {
  const previous = document.body.dataset.jsErrors;
  document.body.dataset.jsErrors = previous ? previous + "\n" + message : message;
}
window.addEventListener("error", (event) => recordError(String(event.message)));
window.addEventListener("unhandledrejection", (event) => recordError(String(event.reason)));

function $(id) {
  return document.getElementById(id);
}

function formatNumber(n) {
  return Number(n).toLocaleString("en-US");
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) {
    return "n/a (fewer than two opened pull requests)";
  }
  const units = [
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
  ];
  let rest = Math.round(seconds);
  const parts = [];
  for (const [name, size] of units) {
    if (rest >= size) {
      parts.push(Math.floor(rest / size) + " " + name);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) {
    parts.push(rest + " s");
  }
  return parts.slice(0, 2).join(" ") + " (" + formatNumber(Math.round(seconds * 10) / 10) + " s)";
}

// An RFC 3339 time from the API, for people: "2015-01-01 12:00:00 UTC".
function formatTime(text) {
  if (typeof text !== "string") {
    return "—";
  }
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]00:00)$/.exec(text);
  return match ? match[1] + " " + match[2] + " UTC" : text;
}

// The current time as RFC 3339, second precision: the same `until` for counts and chart.
function nowRfc3339() {
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function fetchChecked(url, accept) {
  const response = await fetch(url, { headers: { Accept: accept }, cache: "no-store" });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") {
        message = body.error;
      }
    } catch (_) {
      // not JSON: keep the status line
    }
    throw new HttpError(response.status, message);
  }
  return response;
}

async function getJson(url) {
  return (await fetchChecked(url, "application/json")).json();
}

function showError(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

function selectedWindow() {
  const offset = $("offset").value;
  const until = $("until").value.trim();
  return { offset, until: until || nowRfc3339(), live: !until };
}

// The longest span /coverage answers: the strip shows the last 31 days of longer windows.
const MAX_COVERAGE_HOURS = 31 * 24;

function formatShare(share) {
  return Math.round(share * 1000) / 10 + "%";
}

// What a window's numbers rest on, in words: GH Archive's complete record or the poller's sample.
function describeBasis(body) {
  if (body.complete) {
    return "complete: every hour is from GH Archive";
  }
  if (body.archived_share > 0) {
    return "partly complete: " + formatShare(body.archived_share) + " from GH Archive, the rest the poller's sample";
  }
  return "the poller's sample (no GH Archive hour)";
}

function renderCounts(body) {
  for (const type of EVENT_TYPES) {
    const count = body.event_counts[type];
    const element = $("count-" + type);
    element.textContent = formatNumber(count);
    element.dataset.value = String(count);
  }
  $("count-total").textContent = formatNumber(body.total_events);
  $("count-total").dataset.value = String(body.total_events);
  const label = $("window-label");
  label.textContent =
    "From " + formatTime(body.since) + " to " + formatTime(body.until) + " (" + formatNumber(body.offset_minutes) + " minutes): " + describeBasis(body);
  label.dataset.complete = String(body.complete);
  label.dataset.archivedShare = String(body.archived_share);
}

// The strip under the chart: one cell per hour, coloured by where its events come from.
function renderCoverage(body) {
  const strip = $("coverage-strip");
  const cells = body.hours.map((hour) => {
    const cell = document.createElement("span");
    cell.className = "hour";
    cell.dataset.archive = hour.archive;
    let title = formatTime(hour.hour) + ": " + hour.archive + ", " + formatNumber(hour.stored_events) + " events stored";
    if (hour.poller_coverage !== null) {
      title += ", the poller saw " + formatShare(hour.poller_coverage) + " of " + formatNumber(hour.archive_events);
      cell.dataset.pollerCoverage = String(hour.poller_coverage);
    }
    cell.title = title;
    return cell;
  });
  strip.replaceChildren(...cells);
  strip.dataset.loaded = "true";
  strip.dataset.hours = String(body.hours.length);
  const count = (state) => body.hours.filter((h) => h.archive === state).length;
  const measured = body.hours.filter((h) => h.poller_coverage !== null);
  const polled = measured.reduce((sum, h) => sum + h.polled_before_archive, 0);
  const archived = measured.reduce((sum, h) => sum + h.archive_events, 0);
  const parts = [
    count("imported") + " of " + body.hours.length + " hours from GH Archive",
    count("pending") + " pending",
  ];
  if (count("missing") > 0) {
    parts.push(count("missing") + " missing from the archive");
  }
  if (count("damaged") > 0) {
    parts.push(count("damaged") + " damaged");
  }
  if (archived > 0) {
    parts.push("the poller saw " + formatShare(polled / archived) + " of the archived hours' events");
    strip.dataset.pollerCoverage = String(polled / archived);
  }
  if (body.complete_from && body.complete_until) {
    parts.push("complete from " + formatTime(body.complete_from) + " to " + formatTime(body.complete_until));
  }
  $("coverage-summary").textContent = parts.join("; ");
}

async function refreshCoverage(view) {
  const until = new Date(view.until);
  if (Number.isNaN(until.getTime())) {
    return null; // the counts' request answers with the API's own words
  }
  const minutes = Math.min(Number(view.offset), MAX_COVERAGE_HOURS * 60);
  const since = new Date(until.getTime() - minutes * 60 * 1000).toISOString().replace(".000Z", "Z");
  return getJson("/coverage?since=" + encodeURIComponent(since) + "&until=" + encodeURIComponent(view.until));
}

function renderChart(svgText, view) {
  const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
  if (doc.getElementsByTagName("parsererror").length > 0 || doc.documentElement.nodeName !== "svg") {
    throw new Error("the chart is not valid SVG");
  }
  const chart = $("chart");
  chart.replaceChildren(document.importNode(doc.documentElement, true));
  chart.dataset.loaded = "true";
  chart.dataset.renders = String(Number(chart.dataset.renders || "0") + 1);
  chart.dataset.offset = view.offset;
  chart.dataset.until = view.until;
}

function addFact(list, name, value, className) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  if (className) {
    dt.className = className;
  }
  list.append(dt);
  if (value !== undefined) {
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dd);
  }
}

function describeValue(value) {
  if (value === null || value === undefined) {
    return "—";
  }
  if (typeof value === "number") {
    return formatNumber(value);
  }
  if (Array.isArray(value)) {
    return value.map(describeValue).join(", ") || "—";
  }
  if (typeof value === "object") {
    return JSON.stringify(value);
  }
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
    return formatTime(value);
  }
  return String(value);
}

// The poller's share of GitHub's public stream (/health poller.capture), in words.
function describeCapture(capture) {
  const mode = capture.mode + " mode";
  if (typeof capture.seen_share !== "number") {
    return "Share of GitHub's public stream read: not measured yet (" + mode + "; no two polls have overlapped, so the stream's rate is unknown)";
  }
  let text = "The poller reads about " + formatShare(capture.seen_share) + " of GitHub's public stream";
  const details = [];
  if (typeof capture.seen_share_last_hour === "number") {
    details.push(formatShare(capture.seen_share_last_hour) + " in the last hour");
  }
  if (typeof capture.stream_rate === "number") {
    details.push("the stream runs at " + formatNumber(Math.round(capture.stream_rate)) + " events/s");
  }
  details.push(mode);
  return text + " (" + details.join(", ") + ")";
}

function renderCapture(body) {
  const line = $("stream-share");
  const capture = body && body.poller && body.poller.capture;
  if (!capture || typeof capture !== "object") {
    line.hidden = true;
    line.textContent = "";
    delete line.dataset.seenShare;
    return;
  }
  line.hidden = false;
  line.textContent = describeCapture(capture);
  line.dataset.seenShare = typeof capture.seen_share === "number" ? String(capture.seen_share) : "";
}

// /health: the store's fields first, then every nested object (the poller's state, …) as a group.
function renderHealth(body, httpStatus) {
  const status = body && typeof body.status === "string" ? body.status : httpStatus === 503 ? "unavailable" : "unknown";
  const pill = $("status-pill");
  pill.dataset.status = status;
  pill.textContent = status;
  renderCapture(body);
  const list = $("health");
  list.replaceChildren();
  if (!body || typeof body !== "object") {
    addFact(list, "status", status);
    return;
  }
  const groups = [];
  addFact(list, "status", status);
  for (const [key, value] of Object.entries(body)) {
    if (key === "status") {
      continue;
    }
    if (value && typeof value === "object" && !Array.isArray(value)) {
      groups.push([key, value]);
    } else {
      addFact(list, key, describeValue(value));
    }
  }
  for (const [name, group] of groups) {
    addFact(list, name, undefined, "group");
    for (const [key, value] of Object.entries(group)) {
      addFact(list, key, describeValue(value));
    }
  }
}

async function refreshHealth() {
  try {
    const response = await fetch("/health", { headers: { Accept: "application/json" }, cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    renderHealth(body, response.status);
  } catch (err) {
    renderHealth({ status: "unreachable", error: String(err.message || err) }, 0);
  }
}

async function refresh() {
  const generation = ++state.generation;
  const view = selectedWindow();
  const query = "offset=" + encodeURIComponent(view.offset) + "&until=" + encodeURIComponent(view.until);
  try {
    const [counts, svgText, coverage] = await Promise.all([
      getJson("/metrics/events?" + query),
      fetchChecked("/metrics/visualization.svg?" + query, "image/svg+xml").then((r) => r.text()),
      refreshCoverage(view),
      refreshHealth(),
    ]);
    if (generation !== state.generation) {
      return; // a newer refresh started meanwhile
    }
    renderCounts(counts);
    renderChart(svgText, view);
    if (coverage) {
      renderCoverage(coverage);
    }
    showError($("error"), "");
    $("updated").textContent = "updated at " + new Date().toLocaleTimeString("en-GB") + (view.live ? " (live)" : "");
    document.body.dataset.state = "ready";
  } catch (err) {
    if (generation === state.generation) {
      showError($("error"), "Could not load the metrics: " + (err.message || err));
      document.body.dataset.state = "error";
    }
  }
  schedule();
}

function schedule() {
  clearTimeout(state.timer);
  const seconds = Number($("refresh").value);
  if (seconds > 0) {
    state.timer = setTimeout(refresh, seconds * 1000);
  }
}

// The span of the PR average: all time, or the days before the window's end.
function prQuery() {
  const days = Number($("pr-days").value);
  if (!days) {
    return "";
  }
  const until = selectedWindow().until;
  const since = new Date(new Date(until).getTime() - days * 86400 * 1000).toISOString().replace(".000Z", "Z");
  return "?since=" + encodeURIComponent(since) + "&until=" + encodeURIComponent(until);
}

async function showPrAverage(repository) {
  const error = $("pr-error");
  const result = $("pr-result");
  const parts = repository.trim().split("/");
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    showError(error, "Enter a repository as owner/name.");
    result.hidden = true;
    return;
  }
  try {
    const url = "/metrics/pr-average/" + parts.map(encodeURIComponent).join("/") + prQuery();
    const body = await getJson(url);
    $("pr-repository").textContent = body.repository;
    $("pr-average").textContent = formatDuration(body.average_time_seconds);
    $("pr-average").dataset.value = body.average_time_seconds === null ? "null" : String(body.average_time_seconds);
    $("pr-total").textContent = formatNumber(body.total_pull_requests);
    $("pr-total").dataset.value = String(body.total_pull_requests);
    $("pr-first").textContent = formatTime(body.first_opened_at);
    $("pr-last").textContent = formatTime(body.last_opened_at);
    const basis = $("pr-basis");
    if (body.complete === null) {
      basis.textContent =
        "all time; " +
        (body.complete_from ? "complete from " + formatTime(body.complete_from) + " to " + formatTime(body.complete_until) : "no GH Archive hour yet: the poller's sample");
    } else {
      basis.textContent = formatTime(body.since) + " to " + formatTime(body.until) + ": " + describeBasis(body);
    }
    basis.dataset.complete = String(body.complete);
    basis.dataset.archivedShare = String(body.archived_share);
    showError(error, "");
    result.hidden = false;
  } catch (err) {
    showError(error, String(err.message || err));
    result.hidden = true;
  }
}

// The page's state lives in its address (?offset=60&until=…&refresh=5&repo=owner/name&pr_days=7), so a view
// can be bookmarked and shared.
function updateAddress() {
  const params = new URLSearchParams();
  params.set("offset", $("offset").value);
  const until = $("until").value.trim();
  if (until) {
    params.set("until", until);
  }
  params.set("refresh", $("refresh").value);
  const repo = $("pr-repo").value.trim();
  if (repo) {
    params.set("repo", repo);
  }
  if ($("pr-days").value !== "0") {
    params.set("pr_days", $("pr-days").value);
  }
  history.replaceState(null, "", "?" + params.toString());
}

function selectValue(select, value, label) {
  if (!Array.from(select.options).some((option) => option.value === value)) {
    select.append(new Option(label, value));
  }
  select.value = value;
}

function init() {
  const params = new URLSearchParams(location.search);
  const offset = params.get("offset");
  if (offset && /^[0-9]+$/.test(offset)) {
    selectValue($("offset"), offset, "last " + offset + " minutes");
  }
  if (params.get("until")) {
    $("until").value = params.get("until");
  }
  const refreshSeconds = params.get("refresh");
  if (refreshSeconds && /^[0-9]+$/.test(refreshSeconds)) {
    selectValue($("refresh"), refreshSeconds, "every " + refreshSeconds + " s");
  }
  $("window-form").addEventListener("submit", (event) => {
    event.preventDefault();
    updateAddress();
    refresh();
  });
  $("refresh").addEventListener("change", () => {
    updateAddress();
    schedule();
  });
  const prDays = params.get("pr_days");
  if (prDays && /^[0-9]+$/.test(prDays)) {
    selectValue($("pr-days"), prDays, "last " + prDays + " days");
  }
  $("pr-days").addEventListener("change", () => {
    updateAddress();
    if ($("pr-repo").value.trim()) {
      showPrAverage($("pr-repo").value);
    }
  });
  $("pr-form").addEventListener("submit", (event) => {
    event.preventDefault();
    updateAddress();
    showPrAverage($("pr-repo").value);
  });
  const repo = params.get("repo");
  if (repo) {
    $("pr-repo").value = repo;
    showPrAverage(repo);
  }
  refresh();
}

init();
