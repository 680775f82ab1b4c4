//! The release artefacts that can be checked without publishing: the workflow's build matrix,
//! the krew manifest and the Homebrew formula (filled by `.github/release/fill.sh`), the
//! `cargo binstall` metadata, and the chart's Artifact Hub annotations, all naming the same
//! archives.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const TARGETS: [&str; 4] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).expect(path);
    serde_yaml_ng::from_str(&text).expect(path)
}

#[test]
fn the_workflow_builds_every_target_the_installers_name() {
    let workflow = yaml(".github/workflows/release.yml");
    let jobs = workflow["jobs"].as_object().expect("jobs");
    for job in ["binaries", "release", "image", "chart", "crates"] {
        assert!(jobs.contains_key(job), "job {job}");
    }
    let built: Vec<&str> = workflow["jobs"]["binaries"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|e| e["target"].as_str().expect("target"))
        .collect();
    assert_eq!(built, TARGETS);
    // keyless signing needs the OIDC token; nothing else gets write access by default
    assert_eq!(workflow["permissions"]["contents"], "read");
    assert_eq!(
        workflow["jobs"]["image"]["permissions"]["id-token"],
        "write"
    );
}

#[test]
fn krew_manifest_installs_kubectl_netpol_guard_on_every_platform() {
    let manifest = yaml(".github/release/krew.yaml");
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    // `kubectl netpol-guard`: krew turns the dash into an underscore in the binary's name
    assert_eq!(manifest["metadata"]["name"], "netpol-guard");
    let platforms = manifest["spec"]["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), TARGETS.len());
    for (platform, target) in platforms.iter().zip(TARGETS) {
        assert_eq!(platform["bin"], "kubectl-netpol_guard");
        let uri = platform["uri"].as_str().expect("uri");
        assert!(
            uri.ends_with(&format!("netpol-guard-VERSION-{target}.tar.gz")),
            "{uri}"
        );
        assert_eq!(platform["sha256"], format!("SHA256_{target}"));
        let files = platform["files"].as_array().expect("files");
        assert_eq!(
            files[0]["from"],
            format!("netpol-guard-VERSION-{target}/netpol-guard")
        );
        assert_eq!(files[0]["to"], "kubectl-netpol_guard");
        let os = platform["selector"]["matchLabels"]["os"]
            .as_str()
            .expect("os");
        assert_eq!(os == "darwin", target.ends_with("apple-darwin"), "{target}");
    }
}

#[test]
fn fill_puts_each_archives_checksum_into_krew_and_homebrew() {
    let dist = std::env::temp_dir().join(format!("netpol-guard-release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).expect("dist");
    for target in TARGETS {
        std::fs::write(
            dist.join(format!("netpol-guard-9.8.7-{target}.tar.gz")),
            target,
        )
        .expect("archive");
    }
    let out = Command::new("bash")
        .arg(root().join(".github/release/fill.sh"))
        .args(["9.8.7", &dist.display().to_string()])
        .output()
        .expect("fill.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krew: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(dist.join("netpol-guard.krew.yaml")).expect("krew"),
    )
    .expect("filled krew manifest parses");
    assert_eq!(krew["spec"]["version"], "v9.8.7");
    let formula = std::fs::read_to_string(dist.join("netpol-guard.rb")).expect("formula");
    assert!(formula.contains("version \"9.8.7\""));
    for (platform, target) in krew["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .zip(TARGETS)
    {
        let archive = dist.join(format!("netpol-guard-9.8.7-{target}.tar.gz"));
        let sum = Command::new("sha256sum")
            .arg(&archive)
            .output()
            .expect("sha256sum");
        let sum = String::from_utf8_lossy(&sum.stdout)
            .split(' ')
            .next()
            .expect("sum")
            .to_string();
        assert_eq!(platform["sha256"], sum.as_str(), "{target}");
        assert!(formula.contains(&format!("sha256 \"{sum}\"")), "{target}");
        assert!(
            formula.contains(&format!("/v9.8.7/netpol-guard-9.8.7-{target}.tar.gz")),
            "{target}"
        );
    }
    // a missing archive is an error, not a manifest with a placeholder
    std::fs::remove_file(dist.join("netpol-guard-9.8.7-aarch64-apple-darwin.tar.gz")).expect("rm");
    let out = Command::new("bash")
        .arg(root().join(".github/release/fill.sh"))
        .args(["9.8.7", &dist.display().to_string()])
        .output()
        .expect("fill.sh runs");
    assert!(!out.status.success());
}

#[test]
fn binstall_and_the_chart_name_the_same_artefacts() {
    let cargo: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    let binstall = &cargo["package"]["metadata"]["binstall"];
    assert_eq!(
        binstall["pkg-url"].as_str(),
        Some("{ repo }/releases/download/v{ version }/netpol-guard-{ version }-{ target }.tar.gz"),
        "the archives the release workflow names"
    );
    assert_eq!(
        binstall["bin-dir"].as_str(),
        Some("netpol-guard-{ version }-{ target }/{ bin }{ binary-ext }")
    );
    let chart = yaml("charts/netpol-guard/Chart.yaml");
    let annotations = &chart["annotations"];
    assert_eq!(annotations["artifacthub.io/license"], "Apache-2.0");
    let images: Value = serde_yaml_ng::from_str(
        annotations["artifacthub.io/images"]
            .as_str()
            .expect("images"),
    )
    .expect("images");
    let app_version = chart["appVersion"].as_str().expect("appVersion");
    assert_eq!(
        images[0]["image"],
        format!("ghcr.io/netpol-guard/netpol-guard:{app_version}")
    );
    for key in ["artifacthub.io/links", "artifacthub.io/changes"] {
        let list: Value =
            serde_yaml_ng::from_str(annotations[key].as_str().expect(key)).expect(key);
        assert!(list.as_array().is_some_and(|l| !l.is_empty()), "{key}");
    }
}
