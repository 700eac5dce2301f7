//! `GET /metrics`: the Prometheus text exposition format, version 0.0.4.
//!
//! The numbers are read from the status objects that `GET /replication/status` answers with
//! (plus each config's last finished run for its duration), so the two can never disagree. A
//! series whose value is unknown (no complete run yet, no table yet) is left out, as the
//! format intends, rather than written as 0 or NaN.

use crate::time::parse_timestamp_micros;
use serde::Deserialize;
use serde_json::Value as Json;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The fields of one status object that metrics report.
#[derive(Debug, Deserialize)]
struct StatusNumbers {
    config_id: i64,
    target_table: String,
    total_rows_synced: i64,
    lag_seconds: Option<f64>,
    consecutive_failures: i64,
    last_success_at: Option<String>,
    target_row_count: Option<i64>,
}

/// One metric family: its name, type and help, and how to read its value from a config.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&StatusNumbers, Option<i64>) -> Option<Sample>,
}

enum Sample {
    Int(i64),
    Float(f64),
}

const FAMILIES: &[Family] = &[
    Family {
        name: "edge_replica_rows_synced_total",
        kind: "counter",
        help: "Rows upserted into the replica by all runs of the config (status total_rows_synced).",
        value: |s, _| Some(Sample::Int(s.total_rows_synced)),
    },
    Family {
        name: "edge_replica_lag_seconds",
        kind: "gauge",
        help: "Seconds since data_as_of: the replica holds every change the source had committed then (status lag_seconds).",
        value: |s, _| s.lag_seconds.map(Sample::Float),
    },
    Family {
        name: "edge_replica_consecutive_failures",
        kind: "gauge",
        help: "Failed runs since the last successful one (status consecutive_failures).",
        value: |s, _| Some(Sample::Int(s.consecutive_failures)),
    },
    Family {
        name: "edge_replica_last_success_timestamp_seconds",
        kind: "gauge",
        help: "Unix time at which the last ok or partial run ended (status last_success_at).",
        value: |s, _| {
            let us = parse_timestamp_micros(s.last_success_at.as_deref()?)?;
            Some(Sample::Float(us as f64 / 1e6))
        },
    },
    Family {
        name: "edge_replica_last_run_duration_seconds",
        kind: "gauge",
        help: "Duration of the config's last finished run (its run record's duration_ms).",
        value: |_, duration_ms| duration_ms.map(|ms| Sample::Float(ms as f64 / 1000.0)),
    },
    Family {
        name: "edge_replica_target_rows",
        kind: "gauge",
        help: "Rows in the replica's target table now (status target_row_count).",
        value: |s, _| s.target_row_count.map(Sample::Int),
    },
];

/// Escapes a label value: backslash, double quote and line feed, as the format requires.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exposition for `statuses` (status objects as `GET /replication/status` answers them)
/// and `last_duration_ms(config_id)`: the duration of each config's last finished run.
pub fn render(statuses: &[Json], last_duration_ms: impl Fn(i64) -> Option<i64>) -> Result<String, serde_json::Error> {
    let configs: Vec<(StatusNumbers, Option<i64>)> = statuses
        .iter()
        .map(|s| {
            let n = StatusNumbers::deserialize(s)?;
            let d = last_duration_ms(n.config_id);
            Ok((n, d))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    let mut out = String::new();
    for f in FAMILIES {
        // Help texts are constants without backslashes or line feeds: nothing to escape.
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (s, duration) in &configs {
            let Some(v) = (f.value)(s, *duration) else { continue };
            let _ = write!(out, "{}{{config_id=\"{}\",target_table=\"{}\"}} ", f.name, s.config_id, escape_label(&s.target_table));
            let _ = match v {
                Sample::Int(i) => writeln!(out, "{i}"),
                // Rust prints the shortest text that reads back to the same double, never NaN here.
                Sample::Float(x) => writeln!(out, "{x}"),
            };
        }
    }
    Ok(out)
}

/// The read replicas' lag (`follow::statuses`), in seconds; a replica that has not pulled yet
/// has no value and no series.
pub fn render_replicas(out: &mut String, replicas: &[crate::follow::ReplicaStatus]) {
    let _ = writeln!(out, "# HELP edge_replica_replica_lag_seconds How far a read replica is behind the primary: 0 when it holds the primary's position, else the age of the oldest change it lacks.");
    let _ = writeln!(out, "# TYPE edge_replica_replica_lag_seconds gauge");
    for r in replicas {
        if let Some(ms) = r.lag_ms {
            let _ = writeln!(out, "edge_replica_replica_lag_seconds{{location=\"{}\"}} {}", escape_label(&r.location), ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(id: i64, table: &str) -> Json {
        json!({
            "config_id": id, "target_table": table, "state": "idle", "total_rows_synced": 12,
            "lag_seconds": 1.5, "data_as_of": "2026-01-02T03:04:05.000Z", "consecutive_failures": 0,
            "last_success_at": "2026-01-02T03:04:06.250Z", "target_row_count": 7,
        })
    }

    #[test]
    fn every_family_has_help_and_type_and_values_come_from_status() {
        let text = render(&[status(3, "orders")], |_| Some(1234)).unwrap();
        let expected = "\
# HELP edge_replica_rows_synced_total Rows upserted into the replica by all runs of the config (status total_rows_synced).
# TYPE edge_replica_rows_synced_total counter
edge_replica_rows_synced_total{config_id=\"3\",target_table=\"orders\"} 12
# HELP edge_replica_lag_seconds Seconds since data_as_of: the replica holds every change the source had committed then (status lag_seconds).
# TYPE edge_replica_lag_seconds gauge
edge_replica_lag_seconds{config_id=\"3\",target_table=\"orders\"} 1.5
# HELP edge_replica_consecutive_failures Failed runs since the last successful one (status consecutive_failures).
# TYPE edge_replica_consecutive_failures gauge
edge_replica_consecutive_failures{config_id=\"3\",target_table=\"orders\"} 0
# HELP edge_replica_last_success_timestamp_seconds Unix time at which the last ok or partial run ended (status last_success_at).
# TYPE edge_replica_last_success_timestamp_seconds gauge
edge_replica_last_success_timestamp_seconds{config_id=\"3\",target_table=\"orders\"} 1767323046.25
# HELP edge_replica_last_run_duration_seconds Duration of the config's last finished run (its run record's duration_ms).
# TYPE edge_replica_last_run_duration_seconds gauge
edge_replica_last_run_duration_seconds{config_id=\"3\",target_table=\"orders\"} 1.234
# HELP edge_replica_target_rows Rows in the replica's target table now (status target_row_count).
# TYPE edge_replica_target_rows gauge
edge_replica_target_rows{config_id=\"3\",target_table=\"orders\"} 7
";
        assert_eq!(text, expected);
    }

    #[test]
    fn unknown_values_are_omitted_and_labels_escaped() {
        let mut s = status(1, "a\\b\"c\nd");
        s["lag_seconds"] = Json::Null;
        s["last_success_at"] = Json::Null;
        s["target_row_count"] = Json::Null;
        let text = render(&[s], |_| None).unwrap();
        for family in ["lag_seconds", "last_success_timestamp_seconds", "last_run_duration_seconds", "target_rows"] {
            let name = format!("edge_replica_{family}");
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{family}");
            assert!(!text.contains(&format!("\n{name}{{")), "{family} has no series: {text}");
        }
        assert!(text.contains("edge_replica_rows_synced_total{config_id=\"1\",target_table=\"a\\\\b\\\"c\\nd\"} 12\n"), "{text}");
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 2, "{text}");
        assert_eq!(escape_label("plain é"), "plain é");
    }
}
