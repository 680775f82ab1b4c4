//! Reloading files while serving. Files are polled and compared by content, which also
//! catches the way Kubernetes updates a mounted Secret or ConfigMap (an atomic swap of the
//! `..data` symlink): reading through the path always sees the current version.

use std::path::PathBuf;
use std::time::Duration;

/// Calls `on_change` with the contents of `paths` whenever any of them changes (and once at
/// the start of watching only if `initial` differs). A read error is passed on once per
/// failure episode, so the caller can count it; the files are retried at every tick.
pub(crate) async fn watch<F>(
    paths: Vec<PathBuf>,
    interval: Duration,
    initial: Vec<Vec<u8>>,
    mut on_change: F,
) where
    F: FnMut(std::io::Result<Vec<Vec<u8>>>) + Send,
{
    let mut seen = Some(initial);
    let mut failing = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut contents = Vec::with_capacity(paths.len());
        let mut failed = None;
        for path in &paths {
            match tokio::fs::read(path).await {
                Ok(bytes) => contents.push(bytes),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            Some(e) => {
                seen = None;
                if !failing {
                    failing = true;
                    on_change(Err(e));
                }
            }
            None if seen.as_ref() != Some(&contents) => {
                failing = false;
                seen = Some(contents.clone());
                on_change(Ok(contents));
            }
            None => {}
        }
    }
}
