//! Storage rows: project creation, an incremental checkpoint and a full read, each against
//! Microsoft's Python SDK doing the same blob work on the same Azurite in the same run.

use crate::table::{median, ms, Row, Table};
use anyhow::{Context, Result};
use e2e::stack::Azurite;
use open_replit_core::store::project::{Author, Change, ProjectMeta, Projects};
use std::time::{Duration, Instant};

fn sdk(conn: &str, args: &[&str]) -> Result<f64> {
    let root = e2e::repo_root();
    let out = std::process::Command::new(root.join(".state/venv-test/bin/python"))
        .arg(root.join("tests/python/azure_sdk_compat.py"))
        .arg(conn)
        .arg("codebase-projects")
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "SDK: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v["seconds"].as_f64().unwrap_or(0.0))
}

fn meta(id: &str) -> ProjectMeta {
    ProjectMeta {
        id: id.into(),
        name: id.into(),
        template: "fullstack".into(),
        created_ms: 1,
        owner: None,
    }
}

pub async fn rows(t: &mut Table) -> Result<()> {
    let az = Azurite::start().await?;
    let conn = az.connection_string();
    let blob = azure_native::client(&conn, "codebase-projects").map_err(anyhow::Error::msg)?;
    blob.ensure_container()
        .await
        .context("creating the container")?;
    let p = Projects::new(&blob);
    let files: Vec<(String, Vec<u8>)> = e2e::template_files("fullstack").into_iter().collect();

    // Create a project from the fullstack template.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let dir = tempfile::tempdir()?;
    for (path, body) in &files {
        let f = dir.path().join(path);
        std::fs::create_dir_all(f.parent().unwrap_or(dir.path()))?;
        std::fs::write(f, body)?;
    }
    for i in 0..5 {
        let t0 = Instant::now();
        p.create(&meta(&format!("bench-create-{i}")), files.clone())
            .await
            .context("creating a project from the template")?;
        ours.push(t0.elapsed());
        let secs = sdk(
            &conn,
            &[
                "upload-dir",
                &format!("sdk-create-{i}/"),
                &dir.path().to_string_lossy(),
            ],
        )?;
        theirs.push(Duration::from_secs_f64(secs));
    }
    let (o, s) = (median(&mut ours), median(&mut theirs));
    t.push(
        Row::new(
            &format!(
                "Create a project from the fullstack template ({} files)",
                files.len()
            ),
            ms(o),
        )
        .baseline(format!("Python SDK {}", ms(s)))
        .ratio(o.as_secs_f64() / s.as_secs_f64())
        .goal("≤ 1.00× the SDK"),
    );

    // Checkpoint after changing 1 file of 200; count requests.
    let many: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("src/f{i:03}.txt"),
                format!("file {i}\n").repeat(50).into_bytes(),
            )
        })
        .collect();
    p.create(&meta("bench-200"), many.clone())
        .await
        .context("creating the 200-file project")?;
    let mut cps = Vec::new();
    let mut reqs = Vec::new();
    for k in 0..7 {
        let before = blob.request_count();
        let t0 = Instant::now();
        p.commit(
            "bench-200",
            vec![Change::Write {
                path: "src/f007.txt".into(),
                content: format!("v{k}").into_bytes(),
            }],
            &[],
            Author::User,
            "bench",
        )
        .await
        .context("the incremental checkpoint")?;
        cps.push(t0.elapsed());
        reqs.push(blob.request_count() - before);
    }
    let mut sdk_cp = Vec::new();
    for k in 0..7 {
        let d = tempfile::tempdir()?;
        std::fs::write(d.path().join("f007.txt"), format!("v{k}"))?;
        sdk_cp.push(Duration::from_secs_f64(sdk(
            &conn,
            &[
                "upload-dir",
                &format!("sdk-cp-{k}/"),
                &d.path().to_string_lossy(),
            ],
        )?));
    }
    let (o, s) = (median(&mut cps), median(&mut sdk_cp));
    reqs.sort();
    t.push(
        Row::new("Checkpoint after changing 1 file of 200", ms(o))
            .baseline(format!("SDK uploading 1 file + manifest {}", ms(s)))
            .ratio(o.as_secs_f64() / s.as_secs_f64())
            .goal("O(changed files) requests")
            .note(format!(
                "{} requests (head listing, head manifest, 1 object, 1 checkpoint)",
                reqs[reqs.len() / 2]
            )),
    );

    // Read every file of a 200-file project (one without later checkpoints, so both sides read
    // exactly 200 objects).
    p.create(&meta("bench-read"), many)
        .await
        .context("creating the 200-file project")?;
    let head = p
        .head("bench-read")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no head"))?;
    let mut reads = Vec::new();
    let mut sdk_reads = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let all = p
            .read_all("bench-read", &head.manifest)
            .await
            .context("reading all files")?;
        reads.push(t0.elapsed());
        anyhow::ensure!(all.len() == 200);
        sdk_reads.push(Duration::from_secs_f64(sdk(
            &conn,
            &["bulk-read", "bench-read/objects/"],
        )?));
    }
    let (o, s) = (median(&mut reads), median(&mut sdk_reads));
    t.push(
        Row::new("Read all files of a 200-file project", ms(o))
            .baseline(format!("Python SDK {}", ms(s)))
            .ratio(o.as_secs_f64() / s.as_secs_f64())
            .goal("≤ 1.00× the SDK"),
    );
    Ok(())
}
