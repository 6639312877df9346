use super::*;

const CLAIM: &str = "4f1e0c3d8a9b2c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d";

fn serial(s: &str) -> Serial {
    Serial::parse(s).unwrap()
}

#[test]
fn reads_rows_with_or_without_a_header_and_reports_bad_ones_by_line() {
    let text = format!(
        "serial,model,thing_name,claim_certificate_id\n\
         SN-1,sensor-x\n\
         SN-2, sensor-x ,car-2,{CLAIM}\n\
         \n\
         # a comment\n\
         SN 3,sensor-x\n\
         SN-4\n\
         SN-5,sensor-x,bad/thing\n\
         SN-6,sensor-x,,nothex\n\
         SN-1,sensor-y\n\
         SN-7,sensor-x,car-2\n\
         SN-8,,\n"
    );
    let (rows, invalid) = parse_csv(&text);
    assert_eq!(
        rows.iter()
            .map(|r| (r.line, r.serial.as_str()))
            .collect::<Vec<_>>(),
        [(2, "SN-1"), (3, "SN-2")]
    );
    assert_eq!(rows[1].model, "sensor-x", "fields are trimmed");
    assert_eq!(rows[1].thing_name.as_deref(), Some("car-2"));
    assert_eq!(rows[1].claim_certificate_id.as_deref(), Some(CLAIM));
    let lines: Vec<(usize, &str)> = invalid
        .iter()
        .map(|i| (i.line, i.reason.as_str()))
        .collect();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0].0, 6, "{lines:?}");
    assert!(lines[0].1.contains("' '"), "{lines:?}");
    assert!(lines[1].1.contains("1 fields"), "{lines:?}");
    assert!(lines[2].1.contains("thing name"), "{lines:?}");
    assert!(lines[3].1.contains("64 hex"), "{lines:?}");
    assert_eq!(lines[4], (10, "serial SN-1 is also on line 2"));
    assert_eq!(lines[5], (11, "thing name car-2 is also on line 3"));
    assert!(lines[6].1.contains("model is empty"), "{lines:?}");
}

#[test]
fn a_file_without_a_header_starts_at_line_one() {
    let (rows, invalid) = parse_csv("SN-1,m\nSN-2,m");
    assert!(invalid.is_empty());
    assert_eq!(rows[0].line, 1);
    assert_eq!(rows[1].line, 2);
}

fn row(line: usize, s: &str, model: &str) -> ImportRow {
    ImportRow {
        line,
        serial: serial(s),
        model: model.into(),
        thing_name: None,
        claim_certificate_id: None,
    }
}

fn existing(s: &str, status: RegistryStatus) -> (Serial, RegistryEntry) {
    let mut entry = RegistryEntry::allowed(serial(s), "m", s);
    entry.status = status;
    entry.denied_attempts = 2;
    (serial(s), entry)
}

#[test]
fn new_serials_are_created_and_known_ones_kept_unless_they_change() {
    let current: HashMap<_, _> = [
        existing("SN-SAME", RegistryStatus::Allowed),
        existing("SN-MOVED", RegistryStatus::Allowed),
    ]
    .into();
    let rows = [
        row(1, "SN-NEW", "m"),
        row(2, "SN-SAME", "m"),
        row(3, "SN-MOVED", "m2"),
    ];
    let plan = plan(&rows, &current, false);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(
        plan.create[0].thing_name, "SN-NEW",
        "thing name defaults to the serial"
    );
    assert_eq!(plan.unchanged, [serial("SN-SAME")]);
    let (replaced, expected) = &plan.replace[0];
    assert_eq!(replaced.model, "m2");
    assert_eq!(*expected, RegistryStatus::Allowed);
    assert_eq!(replaced.denied_attempts, 2, "the denial count is kept");
}

#[test]
fn provisioned_locked_and_revoked_serials_are_skipped_unless_forced() {
    let current: HashMap<_, _> = [
        existing("SN-P", RegistryStatus::Provisioned),
        existing("SN-L", RegistryStatus::Locked),
        existing("SN-R", RegistryStatus::Revoked),
    ]
    .into();
    let rows = [
        row(1, "SN-P", "m"),
        row(2, "SN-L", "m"),
        row(3, "SN-R", "m"),
    ];
    let kept = plan(&rows, &current, false);
    assert!(kept.create.is_empty() && kept.replace.is_empty());
    assert_eq!(kept.skipped.len(), 3);
    assert!(
        kept.skipped[0].reason.starts_with("PROVISIONED"),
        "{:?}",
        kept.skipped
    );
    let forced = plan(&rows, &current, true);
    assert_eq!(forced.replace.len(), 3);
    for (entry, expected) in &forced.replace {
        assert_eq!(entry.status, RegistryStatus::Allowed);
        assert_eq!(entry.denied_attempts, 0);
        assert_eq!(
            *expected, current[&entry.serial].status,
            "conditional on what was read"
        );
    }
}

#[test]
fn a_claim_certificate_is_added_to_the_batch_list_once() {
    let (s, mut entry) = existing("SN-1", RegistryStatus::Allowed);
    entry.claim_certificate_ids = vec![CLAIM.into()];
    let current: HashMap<_, _> = [(s, entry)].into();
    let mut with_claim = row(1, "SN-1", "m");
    with_claim.claim_certificate_id = Some(CLAIM.into());
    assert_eq!(plan(&[with_claim], &current, false).unchanged.len(), 1);
}

#[test]
fn the_report_names_every_skipped_and_invalid_line() {
    let report = ImportReport {
        dry_run: true,
        rows: 4,
        created: 1,
        replaced: 1,
        unchanged: 0,
        skipped: vec![Skipped {
            line: 3,
            serial: "SN-P".into(),
            reason: "PROVISIONED".into(),
        }],
        invalid: vec![InvalidRow {
            line: 4,
            reason: "bad".into(),
        }],
        batch_calls: 0,
    };
    assert_eq!(
        report.render(),
        "would import 2 of 4 rows (1 new, 1 updated); 0 unchanged, 1 skipped, 1 invalid\n\
         line 3: skipped SN-P: PROVISIONED\nline 4: invalid: bad"
    );
}

/// The CSV reader against anything in a file: a good allowlist with a few characters
/// changed, and any bytes. Every non-empty data line ends as a row or as a refusal with a
/// line number and a reason; nothing panics.
mod fuzz {
    use fleetwire::testing::fuzz::{near_text, text};
    use proptest::prelude::*;

    use super::*;

    const GOOD: &str = "serial,model,thing_name,claim_certificate_id\n\
        SN-1,sensor-x\n\
        SN-2,sensor-x,car-2,4f1e0c3d8a9b2c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d\n\
        SN-3,gateway-y,gw-3\n";

    fn accounted(text: &str) -> Result<(), TestCaseError> {
        let (rows, invalid) = parse_csv(text);
        let lines = file_lines(text).count();
        for refusal in &invalid {
            prop_assert!(!refusal.reason.trim().is_empty());
            prop_assert!(
                refusal.line >= 1 && refusal.line <= lines + 1,
                "line {} of {}",
                refusal.line,
                lines
            );
        }
        for row in &rows {
            prop_assert!(row.line >= 1 && row.line <= lines);
        }
        prop_assert!(rows.len() + invalid.len() <= lines + 1);
        Ok(())
    }

    #[test]
    fn lines_end_as_the_csv_reader_ends_them() {
        assert_eq!(
            file_lines("a\nb\r\nc\rd").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(file_lines("a\n").collect::<Vec<_>>(), ["a", ""]);
        assert_eq!(file_lines("").count(), 1);
        let (rows, _) = parse_csv("SN-1,sensor-x\rSN-2,sensor-x\r\rSN-3,sensor-x");
        let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
        assert_eq!(
            lines,
            [1, 2, 4],
            "a file with lone carriage returns, numbered as an editor shows it"
        );
    }

    proptest! {
        #[test]
        fn a_changed_allowlist_is_read_row_by_row(text in near_text(GOOD)) {
            accounted(&text)?;
        }

        #[test]
        fn any_bytes_are_read_row_by_row(text in text()) {
            accounted(&text)?;
        }
    }
}
