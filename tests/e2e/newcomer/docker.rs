//! Docker: the build stage compiles from exactly what the Dockerfile copies.

use super::*;

// ---------------------------------------------------------------------------------------------
// Docker: the build stage compiles from exactly what the Dockerfile copies
// ---------------------------------------------------------------------------------------------

/// `*` in one path component (what the Dockerfile and .dockerignore here use).
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len()
                && name.starts_with(head)
                && name.ends_with(tail)
                && !tail.contains('*')
        }
    }
}

/// The build context as Docker sees it through `.dockerignore`: this project's file is an
/// allow-list (`*`, then `!path` lines), which is all this reads.
struct Context {
    /// Each allowed pattern, by path component.
    allowed: Vec<Vec<String>>,
}

impl Context {
    fn read() -> Context {
        let path = Path::new(REPO).join(".dockerignore");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "no .dockerignore: the build context is the whole folder, target/ included \
                 (gigabytes sent to the daemon on every build)"
            )
        });
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            lines.first(),
            Some(&"*"),
            ".dockerignore must start by excluding everything (an allow-list)"
        );
        let allowed = lines[1..]
            .iter()
            .map(|l| {
                let p = l.strip_prefix('!').unwrap_or_else(|| {
                    panic!(".dockerignore line {l:?}: only `!path` lines follow `*`")
                });
                p.trim_matches('/').split('/').map(String::from).collect()
            })
            .collect();
        Context { allowed }
    }

    /// Whether `rel` (a file or folder of the repo) is in the context.
    fn includes(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        self.allowed
            .iter()
            .any(|pat| pat.len() <= parts.len() && pat.iter().zip(&parts).all(|(p, n)| glob(p, n)))
    }

    /// Whether a folder may hold files of the context (so it must be walked).
    fn may_hold(&self, rel: &Path) -> bool {
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        self.includes(rel)
            || self.allowed.iter().any(|pat| {
                pat.len() > parts.len() && pat.iter().zip(&parts).all(|(p, n)| glob(p, n))
            })
    }

    /// Every file of the context, relative to the repo, with its size.
    fn files(&self) -> Vec<(PathBuf, u64)> {
        fn walk(ctx: &Context, root: &Path, rel: &Path, out: &mut Vec<(PathBuf, u64)>) {
            for entry in std::fs::read_dir(root.join(rel)).unwrap() {
                let entry = entry.unwrap();
                let rel = rel.join(entry.file_name());
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    if ctx.may_hold(&rel) {
                        walk(ctx, root, &rel, out);
                    }
                } else if ctx.includes(&rel) {
                    out.push((rel, meta.len()));
                }
            }
        }
        let mut out = Vec::new();
        walk(self, Path::new(REPO), Path::new(""), &mut out);
        out
    }
}

/// Copies what one `COPY src... dest` (from the context) puts under `root` (the stage's
/// WORKDIR); panics naming the source when the context lacks it, as `docker build` fails.
fn copy(ctx: &Context, context_files: &[(PathBuf, u64)], args: &str, root: &Path) {
    let words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    assert!(
        words.len() >= 2 && !args.trim_start().starts_with('['),
        "COPY {args}: only the plain `COPY src... dest` form is read here"
    );
    let (dest, sources) = words.split_last().unwrap();
    let into_dir = dest.ends_with('/') || sources.len() > 1;
    for src in sources {
        let src = Path::new(src.trim_end_matches('/'));
        let pattern: Vec<String> = src
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let matched: Vec<&PathBuf> = context_files
            .iter()
            .map(|(p, _)| p)
            .filter(|p| {
                let parts: Vec<String> =
                    p.iter().map(|c| c.to_string_lossy().into_owned()).collect();
                parts.len() >= pattern.len() && pattern.iter().zip(&parts).all(|(g, n)| glob(g, n))
            })
            .collect();
        assert!(
            !matched.is_empty(),
            "COPY {args}: {} is not in the build context (missing, or not allowed by .dockerignore)",
            src.display()
        );
        for file in matched {
            assert!(ctx.includes(file));
            let depth = pattern.len();
            let rest: PathBuf = file.iter().skip(depth).collect();
            let target = if rest.as_os_str().is_empty() {
                // The source is this file.
                if into_dir {
                    root.join(dest).join(file.file_name().unwrap())
                } else {
                    root.join(dest)
                }
            } else {
                // A file inside a copied folder: the folder's contents go into `dest`.
                root.join(dest).join(rest)
            };
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(Path::new(REPO).join(file), &target).unwrap();
        }
    }
}

/// A folder removed when the test ends.
struct CleanDir(PathBuf);

impl CleanDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CleanDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `[[bench]]` names of Cargo.toml.
fn bench_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench {
            if let Some(v) = line.strip_prefix("name = ") {
                names.push(v.trim_matches('"').to_string());
            }
        }
    }
    names
}

/// Issue 12: the Dockerfile did not build (`conf/dev.yaml`, which the binary builds in, was
/// never copied) and had no .dockerignore (the context was the whole target/). No Docker
/// daemon exists here, so the build stage is replayed: its COPY lines, read from the
/// Dockerfile, copy from the context `.dockerignore` allows into a clean folder, the bench
/// stand-ins of its dependency layer are added, and `cargo check --offline --locked` compiles
/// it, sharing this build's target dir (dependencies are already checked by clippy; only this
/// crate is checked again, under another path, so target/debug/wecom-sidecar is untouched).
#[test]
fn the_docker_build_stage_compiles_from_exactly_what_the_dockerfile_copies() {
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).unwrap();
    let ctx = Context::read();
    let files = ctx.files();
    let bytes: u64 = files.iter().map(|(_, n)| n).sum();
    assert!(
        files.iter().all(|(p, _)| !p.starts_with("target")),
        "target/ is in the build context"
    );
    assert!(
        bytes < 16 * 1024 * 1024,
        "the build context is {bytes} bytes over {} files",
        files.len()
    );

    // A clean folder at a fixed path under cargo's test scratch dir: emptied every run, and the
    // same path each time, so the copy's crate keeps one set of artifacts instead of a new one
    // per run.
    let clean_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-build-stage");
    if clean_dir.exists() {
        std::fs::remove_dir_all(&clean_dir).unwrap();
    }
    std::fs::create_dir_all(&clean_dir).unwrap();
    let clean = CleanDir(clean_dir);
    let mut stage = 0;
    let mut copies = 0;
    for ins in instructions(&dockerfile) {
        match ins.op.as_str() {
            "FROM" => stage += 1,
            "COPY" if ins.args.contains("--from=") => {}
            // The build stage's files land in its WORKDIR; the runtime stage's COPY sources
            // must be in the context too.
            "COPY" if stage == 1 => {
                copy(&ctx, &files, &ins.args, clean.path());
                copies += 1;
            }
            "COPY" => {
                let scratch = tempfile::tempdir().unwrap();
                let args = ins.args.replace(" /", " ");
                copy(&ctx, &files, &args, scratch.path());
            }
            _ => {}
        }
    }
    assert!(copies >= 2, "the build stage copies nothing: {dockerfile}");
    // The dependency layer leaves stand-ins for the manifest's benches (cargo refuses a
    // manifest whose bench files are missing); the Dockerfile's RUN makes them the same way.
    let manifest = std::fs::read_to_string(clean.path().join("Cargo.toml")).unwrap();
    assert!(
        dockerfile.contains("benches/$b.rs"),
        "the stand-in step is gone"
    );
    for b in bench_names(&manifest) {
        let p = clean.path().join("benches").join(format!("{b}.rs"));
        if !p.exists() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "fn main() {}\n").unwrap();
        }
    }

    let target_dir = Path::new(env!("CARGO_BIN_EXE_wecom-sidecar"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--offline", "--locked", "--bin", "wecom-sidecar"])
        .current_dir(clean.path())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Docker build stage does not compile from the files it copies:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
