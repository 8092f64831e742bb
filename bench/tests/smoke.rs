//! Smoke test: the quick mode with one round writes a well-formed markdown
//! table, JSON and SVG plots. It checks the shape of the output, never the
//! speed (CI machines are noisy and this build may be a debug build).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn svg_ok(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        path.display()
    );
    let drawn = doc
        .descendants()
        .filter(|n| matches!(n.tag_name().name(), "polyline" | "path" | "rect" | "line"))
        .count();
    assert!(drawn > 10, "{}: only {drawn} shapes drawn", path.display());
    let texts = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .count();
    assert!(texts > 5, "{}: only {texts} labels", path.display());
}

/// The rows of the markdown table under `heading`: each a list of cells.
fn table(md: &str, heading: &str) -> Vec<Vec<String>> {
    let start = md
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the markdown"));
    md[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn quick_mode_writes_well_formed_outputs() {
    let dir = std::env::temp_dir().join(format!("memtube-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_memtube-bench"))
        .args(["--quick", "--rounds", "1", "--out"])
        .arg(&dir)
        .output()
        .expect("run memtube-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "memtube-bench failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The markdown: on stdout and in results.md, three tables of consistent width.
    let md = std::fs::read_to_string(dir.join("results.md")).expect("results.md");
    assert!(stdout.contains(&md), "stdout does not carry the markdown");
    for (heading, min_rows) in [
        ("### Round trip", 20),
        ("### One-way streaming", 15),
        ("### Wake-up", 2),
    ] {
        let rows = table(&md, heading);
        assert!(rows.len() >= min_rows + 2, "{heading}: {} rows", rows.len());
        let width = rows[0].len();
        assert!(
            rows[1].iter().all(|c| c == "---"),
            "{heading}: no separator row"
        );
        for r in &rows {
            assert_eq!(r.len(), width, "{heading}: ragged row {r:?}");
        }
    }
    let rt = table(&md, "### Round trip");
    assert!(
        rt.iter()
            .any(|r| r[0] == "memtube pure-spin" && r[1] == "32 B"),
        "no memtube 32 B round-trip row"
    );
    assert!(rt.iter().any(|r| r[0] == "floor: one line"), "no floor row");

    // The JSON: every raw run, the machine, kept and dropped rounds.
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("results.json")).expect("results.json"),
    )
    .expect("results.json is valid JSON");
    for key in ["cpu_model", "kernel", "pinning", "scheduler"] {
        assert!(
            json["machine"][key].as_str().is_some_and(|s| !s.is_empty()),
            "machine.{key} missing"
        );
    }
    let runs = json["runs"].as_array().expect("runs");
    let (total, kept, dropped) = (
        json["runs_total"].as_u64().expect("runs_total"),
        json["runs_kept"].as_u64().expect("runs_kept"),
        json["runs_dropped"].as_u64().expect("runs_dropped"),
    );
    assert_eq!(runs.len() as u64, total);
    assert_eq!(kept + dropped, total);
    assert_eq!(json["kept_per_round"].as_array().map(Vec::len), Some(1));
    for r in runs {
        assert!(r["kept"].is_boolean() && r["floor_before_p50_ns"].as_u64().is_some());
        match r["kind"].as_str() {
            Some("round_trip") | Some("wake_up") => {
                let l = &r["latency_ns"];
                let p = |k: &str| l[k].as_u64().unwrap_or_else(|| panic!("latency_ns.{k}"));
                assert!(p("count") > 0);
                assert!(p("min") <= p("p50") && p("p50") <= p("p99") && p("p99") <= p("max"));
            }
            Some("stream") => {
                assert!(r["messages_per_s"].as_f64().is_some_and(|x| x > 0.0));
            }
            other => panic!("unknown run kind {other:?}"),
        }
    }
    assert!(json["summaries"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(json["failed_runs"].is_array());

    for f in ["headline.svg", "percentiles.svg", "throughput.svg"] {
        svg_ok(&dir.join(f));
    }
    assert!(
        !dir.join("latency.svg").exists(),
        "latency.svg is no longer drawn"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
