//! `bench-charts REPORT.json OUT_DIR`: the bench report's charts as SVG files in OUT_DIR.

use std::process::ExitCode;

use coldstart::charts::{from_report, render_svg};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [report, out] = args.as_slice() else {
        eprintln!("usage: bench-charts REPORT.json OUT_DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::read_to_string(report)
        .map_err(|e| format!("cannot read {report}: {e}"))
        .and_then(|text| serde_json::from_str(&text).map_err(|e| format!("{report}: {e}")))
        .and_then(|report| from_report(&report))
        .and_then(|charts| {
            std::fs::create_dir_all(out).map_err(|e| format!("cannot create {out}: {e}"))?;
            charts
                .iter()
                .map(|chart| {
                    let path = std::path::Path::new(out).join(chart.file);
                    let svg = render_svg(chart)?;
                    std::fs::write(&path, svg)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    Ok(path.display().to_string())
                })
                .collect::<Result<Vec<_>, String>>()
        });
    match written {
        Ok(paths) => {
            println!("charts: {}", paths.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-charts: {e}");
            ExitCode::FAILURE
        }
    }
}
