//! `scanvault backup` and `scanvault restore` of the embedded SQLite database: a backup
//! taken while reports are being stored is the database as of one moment between two of
//! them, and restores into an empty directory with every table's content intact.

use crate::cli::bin;
use crate::support::{corpus_dir, Db, TestApp};
use scanvault::store::{Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_ingest_restores_to_one_moment() {
    let app = TestApp::new(Db::Sqlite).await;
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir().join("trivy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let out_dir = tempfile::tempdir().unwrap();
    let backup = out_dir.path().join("scanvault-backup.db");

    // Every state the database passes through, and a backup taken in the middle.
    let mut states = vec![app.fingerprint().await];
    let mut backup_task = None;
    for (i, f) in files.iter().enumerate() {
        if i == files.len() / 2 {
            let store = app.store.clone();
            let path = backup.clone();
            backup_task = Some(tokio::spawn(async move {
                store.admin().backup_into(&path).await
            }));
        }
        let r = app.post_scan("", std::fs::read(f).unwrap()).await;
        assert!(r.status.is_success(), "{}", f.display());
        states.push(app.fingerprint().await);
    }
    backup_task.unwrap().await.unwrap().unwrap();

    // Restored into an empty directory by the command.
    let restored = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("restore")
        .arg(&backup)
        .env("DATA_DIR", restored.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(&StoreOptions {
        data_dir: Some(restored.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap();
    let got = store.admin().content_checksums().await.unwrap();
    store.close().await;
    let at = states.iter().position(|s| *s == got);
    assert!(
        at.is_some(),
        "the restored database is none of the {} states the source went through",
        states.len()
    );
    app.finish().await;
}

#[test]
fn backup_and_restore_refuse_what_they_would_overwrite() {
    let data = tempfile::tempdir().unwrap();
    let report = corpus_dir().join("trivy/alpine-3.10_trivy-dev-head.json");
    let ok = bin()
        .arg("ingest")
        .arg(&report)
        .env("DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(ok.status.success());
    let file = data.path().join("copy.db");
    let run = |args: &[&std::ffi::OsStr], dir: &std::path::Path| {
        bin().args(args).env("DATA_DIR", dir).output().unwrap()
    };
    let out = run(
        &["backup".as_ref(), "--out".as_ref(), file.as_os_str()],
        data.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second backup to the same file is refused.
    let out = run(
        &["backup".as_ref(), "--out".as_ref(), file.as_os_str()],
        data.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
    // Restoring over a database is refused; into an empty directory it works.
    let out = run(&["restore".as_ref(), file.as_os_str()], data.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty DATA_DIR"));
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["restore".as_ref(), file.as_os_str()], empty.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A file that is not a database is refused and leaves nothing behind.
    let other = tempfile::tempdir().unwrap();
    let out = run(&["restore".as_ref(), report.as_os_str()], other.path());
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
}
