//! The container image, without a Docker engine: the repository's `Dockerfile` is read, and what
//! its runtime stage runs is run here. The directory layout its `install -d` line creates is
//! created the same way under a scratch root, the server binary is copied where the image has
//! it, and it runs as the image's user (uid 10001, through `setpriv`, so root only) with the
//! image's environment, checking that it starts, answers `/health`, and writes its memory store,
//! its poll state and its raw poll files into the image's volumes. The same layout created the
//! way an image without that line gets it (root's directories) is refused, so that the check
//! can fail. The build stage is checked where it can be without building: every workspace
//! member's manifest reaches the dependency layer, whose commands give a workspace cargo loads
//! (every target it declares exists).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{Server, get_json, served_kept, wait_for};
use crate::helpers::fake_github_serving_recorded_events;

const BIN: &str = env!("CARGO_BIN_EXE_github-stats-server");

/// The image's `PATH` (Debian's default).
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// One instruction of a Dockerfile: its keyword (upper case) and its arguments, continuation
/// lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's stages, each a list of instructions (`FROM` first).
fn stages() -> Vec<Vec<Instruction>> {
    let text = std::fs::read_to_string(repository().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Comment lines are dropped, also inside a continued instruction (as Docker does).
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("a Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

/// The shell commands of a `RUN`, split at `&&`.
fn commands(run: &str) -> Vec<Vec<String>> {
    run.split("&&")
        .map(|c| c.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// What the runtime stage says about the files and the user, checked for consistency.
struct Runtime {
    uid: u32,
    gid: u32,
    mode: u32,
    /// Every directory of the `install -d` line, the home and the volumes.
    directories: Vec<PathBuf>,
    volumes: Vec<PathBuf>,
    workdir: PathBuf,
    env: BTreeMap<String, String>,
}

fn runtime() -> Runtime {
    let stages = stages();
    let stage = stages.last().unwrap();
    let position = |keyword: &str| {
        stage
            .iter()
            .position(|i| i.keyword == keyword)
            .unwrap_or_else(|| panic!("the runtime stage has no {keyword}"))
    };
    let value = |keyword: &str| &stage[position(keyword)].args;

    let (user, group) = value("USER")
        .split_once(':')
        .expect("USER uid:gid, numeric (Kubernetes' runAsNonRoot needs a number)");
    let (uid, gid): (u32, u32) = (user.parse().unwrap(), group.parse().unwrap());
    assert_ne!(uid, 0, "the image runs as root");

    let (install_at, install) = stage
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "RUN")
        .find_map(|(at, i)| {
            commands(&i.args)
                .into_iter()
                .find(|c| c.starts_with(&["install".to_owned(), "-d".to_owned()]))
                .map(|c| (at, c))
        })
        .expect("a RUN of `install -d` creates the image's directories");
    assert!(
        install_at < position("VOLUME") && install_at < position("USER"),
        "the directories are created before VOLUME and USER"
    );
    let option = |flag: &str| {
        let at = install.iter().position(|a| a == flag).unwrap();
        install[at + 1].clone()
    };
    assert_eq!(option("-o"), uid.to_string(), "{install:?}");
    assert_eq!(option("-g"), gid.to_string(), "{install:?}");
    let mode = u32::from_str_radix(&option("-m"), 8).unwrap();
    let directories: Vec<PathBuf> = install
        .iter()
        .filter(|a| a.starts_with('/'))
        .map(PathBuf::from)
        .collect();

    let volumes: Vec<PathBuf> = serde_json::from_str::<Vec<String>>(value("VOLUME"))
        .expect("VOLUME as a JSON array")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let workdir = PathBuf::from(value("WORKDIR"));
    for directory in volumes.iter().chain([&workdir]) {
        assert!(
            directories.contains(directory),
            "{} is not created by the install line, so it would be root's",
            directory.display()
        );
    }

    let mut env = BTreeMap::new();
    for instruction in stage.iter().filter(|i| i.keyword == "ENV") {
        for pair in instruction.args.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("ENV NAME=value");
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    // What the server writes lands in a volume.
    let in_a_volume = |name: &str, path: &Path| {
        assert!(
            volumes.iter().any(|v| v == path),
            "{name} ({}) is not a volume",
            path.display()
        );
    };
    in_a_volume("DATA_DIR", Path::new(&env["DATA_DIR"]));
    in_a_volume("EVENTS_DIRECTORY", Path::new(&env["EVENTS_DIRECTORY"]));
    in_a_volume(
        "the directory of CLIENT_STATE_FILE",
        Path::new(&env["CLIENT_STATE_FILE"]).parent().unwrap(),
    );
    Runtime {
        uid,
        gid,
        mode,
        directories,
        volumes,
        workdir,
        env,
    }
}

/// `path` (absolute in the image) under `root`.
fn under(root: &Path, path: impl AsRef<Path>) -> PathBuf {
    root.join(path.as_ref().strip_prefix("/").unwrap())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// A scratch root with the image's binary, traversable by anyone (like `/`).
fn image_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for ancestor in root.path().ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} cannot be entered by the image's user: set TMPDIR to a directory it can (/tmp)",
            ancestor.display()
        );
    }
    let bin = under(root.path(), "/usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BIN, bin.join("github-stats-server")).unwrap();
    root
}

/// The image's entry point as its user: `setpriv` to the USER, the image's environment with its
/// paths under `root`, in its WORKDIR under `root`.
fn entrypoint(runtime: &Runtime, root: &Path) -> Command {
    let mut command = Command::new("/usr/bin/setpriv");
    command
        .arg(format!("--reuid={}", runtime.uid))
        .arg(format!("--regid={}", runtime.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(under(root, "/usr/local/bin/github-stats-server"))
        .env_clear()
        .env("PATH", IMAGE_PATH)
        .env("HOME", under(root, &runtime.workdir))
        .env("LOG_LEVEL", "info")
        .current_dir(under(root, &runtime.workdir));
    for (name, value) in &runtime.env {
        if value.starts_with('/') {
            command.env(name, under(root, value));
        } else {
            command.env(name, value);
        }
    }
    command
}

/// The runtime stage's user owns its home and volumes, and the server running as that user in
/// that layout starts, polls (a fake GitHub), answers `/health` and writes its data file, its
/// poll state and (`SAVE_EVENTS_TO_FILES`, as `docker-compose.yml` sets) its raw poll files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_as_its_user_and_writes_into_its_volumes() {
    let runtime = runtime();
    if !is_root() {
        eprintln!(
            "skipped: running the server as the image's user (uid {}) needs root to switch \
             users (setpriv); scripts/test.sh runs it on CI, as root",
            runtime.uid
        );
        return;
    }

    // Without the install line, Docker creates the volumes as root's: the check must see that.
    let bare = image_root();
    for directory in &runtime.directories {
        std::fs::create_dir_all(under(bare.path(), directory)).unwrap();
    }
    let mut refused = entrypoint(&runtime, bare.path())
        .args(["--bind-address", "127.0.0.1:0", "--no-poll"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            refused.kill().unwrap();
            panic!("the server ran with root's volumes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");

    // The layout as the Dockerfile creates it.
    let root = image_root();
    let created = Command::new("install")
        .args(["-d", "-o", &runtime.uid.to_string()])
        .args(["-g", &runtime.gid.to_string()])
        .args(["-m", &format!("{:o}", runtime.mode)])
        .args(runtime.directories.iter().map(|d| under(root.path(), d)))
        .status()
        .unwrap();
    assert!(created.success());
    for volume in &runtime.volumes {
        let metadata = std::fs::metadata(under(root.path(), volume)).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (runtime.uid, runtime.gid));
    }

    let fake = fake_github_serving_recorded_events().await;
    let kept = served_kept();
    let mut command = entrypoint(&runtime, root.path());
    command
        .env("GITHUB_API_URL", fake.url())
        .env("SAVE_EVENTS_TO_FILES", "true");
    let server = Server::start(command);
    let base = server.base.clone();
    wait_for(
        &format!("{base}/health"),
        "/ingest/inserted",
        kept.len() as u64,
        &server,
    )
    .await;
    // The image's HEALTHCHECK: `curl -fsS http://127.0.0.1:8000/health`.
    let health = get_json(&format!("{base}/health")).await;
    assert_eq!(health["status"], "ok", "{health}");
    let log = server.stop();
    assert!(!log.contains("Permission denied"), "{log}");
    assert!(!log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");

    let owned_file = |path: PathBuf| {
        let metadata =
            std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}\n{log}", path.display()));
        assert!(
            metadata.is_file() && metadata.len() > 0,
            "{}",
            path.display()
        );
        assert_eq!(metadata.uid(), runtime.uid, "{}", path.display());
    };
    owned_file(under(root.path(), &runtime.env["DATA_DIR"]).join("events.log"));
    owned_file(under(root.path(), &runtime.env["CLIENT_STATE_FILE"]));
    let raw = std::fs::read_dir(under(root.path(), &runtime.env["EVENTS_DIRECTORY"]))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert!(!raw.is_empty(), "no raw poll file: {log}");
    raw.into_iter().for_each(owned_file);
}

/// The build stage: every workspace member's manifest is copied into the dependency layer
/// before its build, and that layer's commands (run here with a `cargo` that only loads the
/// workspace, offline, instead of building it) give a workspace cargo accepts (every target it
/// declares exists); the second build touches every workspace crate the binaries are built from; the
/// binaries are stripped; the base images are pinned to exact versions.
#[test]
fn the_image_builds_its_dependencies_in_a_layer_of_their_own() {
    let stages = stages();
    let build = &stages[0];
    for stage in &stages {
        let image = stage[0].args.split_whitespace().next().unwrap();
        let tag = image.split_once(':').map(|(_, t)| t).unwrap_or("");
        let version = tag.split('-').next().unwrap();
        assert!(
            version.split('.').count() >= 2 && version.split('.').all(|n| n.parse::<u32>().is_ok()),
            "{image}: not pinned to an exact version"
        );
    }
    assert!(
        build
            .iter()
            .any(|i| i.keyword == "ENV" && i.args.contains("CARGO_PROFILE_RELEASE_STRIP=true")),
        "the binaries are stripped"
    );

    let manifest = std::fs::read_to_string(repository().join("Cargo.toml")).unwrap();
    let members: Vec<String> = manifest
        .split_once("members = [")
        .unwrap()
        .1
        .split_once(']')
        .unwrap()
        .0
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 4, "{members:?}");

    let dependencies_at = build
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a cargo build");
    let copied: Vec<&str> = build[..dependencies_at]
        .iter()
        .filter(|i| i.keyword == "COPY")
        .map(|i| i.args.as_str())
        .collect();
    assert!(!copied.iter().any(|c| c.starts_with(". ")), "{copied:?}");

    // The dependency layer, in a scratch directory.
    let scratch = tempfile::tempdir().unwrap();
    for copy in &copied {
        let parts: Vec<&str> = copy.split_whitespace().collect();
        let (sources, destination) = parts.split_at(parts.len() - 1);
        for source in sources {
            let to = scratch
                .path()
                .join(destination[0])
                .join(Path::new(source).file_name().unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repository().join(source), to).unwrap();
        }
    }
    for member in &members {
        assert!(
            scratch.path().join(member).join("Cargo.toml").is_file(),
            "{member}/Cargo.toml is not copied before the dependency build"
        );
    }
    let fake_bin = scratch.path().join(".fake-bin");
    std::fs::create_dir(&fake_bin).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    std::fs::write(
        fake_bin.join("cargo"),
        format!(
            "#!/bin/sh\n# The Dockerfile's `cargo build`, instead: does the workspace load?\n\
             exec '{cargo}' metadata --no-deps --offline --format-version 1 >/dev/null\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        fake_bin.join("cargo"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-ec", &build[dependencies_at].args])
        .current_dir(scratch.path())
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the dependency layer fails: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The second build rebuilds every crate of the workspace the binaries use.
    let second = build[dependencies_at + 1..]
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the build of the workspace");
    for member in members.iter().filter(|m| m.starts_with("github-stats-")) {
        assert!(
            second.args.contains(&format!(" {member} ")) && second.args.contains("touch"),
            "{member}'s sources are not touched before the second build: {}",
            second.args
        );
    }
}
