//! The named-read helper on both backends: integer flags and JSON text convert the same way on
//! SQLite and PostgreSQL, and a read of a column the SELECT lacks, or of text that is not JSON,
//! fails with an error that names the column.

use lookout_store::row::RowExt;
use lookout_store::{Backend, StoreError};
use serde_json::{json, Value};
use sqlx::Row;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(named_reads_convert_flags_and_json_and_name_the_column_they_miss);

async fn named_reads_convert_flags_and_json_and_name_the_column_they_miss(f: Fixture) {
    let r = sqlx::query(
        "SELECT CAST(1 AS BIGINT) AS paused, CAST(0 AS BIGINT) AS alerted, CAST(7 AS BIGINT) AS odd_flag,
                CAST(NULL AS BIGINT) AS last_ok, '{\"tags\":[\"a\",\"b\"],\"n\":2}' AS spec,
                CAST(NULL AS TEXT) AS details, 'not json' AS broken",
    )
    .fetch_one(f.store.pool())
    .await
    .unwrap();

    assert!(r.flag("paused").unwrap());
    assert!(!r.flag("alerted").unwrap());
    assert!(r.flag("odd_flag").unwrap(), "any non-zero integer is true");
    assert_eq!(r.opt_flag("last_ok").unwrap(), None);
    assert_eq!(r.opt_flag("paused").unwrap(), Some(true));
    assert_eq!(r.opt_flag("alerted").unwrap(), Some(false));

    let spec: Value = r.json("spec").unwrap();
    assert_eq!(spec, json!({"tags": ["a", "b"], "n": 2}));
    assert_eq!(
        r.opt_json::<Value>("spec").unwrap(),
        Some(json!({"tags": ["a", "b"], "n": 2}))
    );
    assert_eq!(r.opt_json::<Value>("details").unwrap(), None);

    // Stored text that is not JSON is corrupt data, reported with the column it came from.
    match r.json::<Value>("broken") {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("broken"), "{msg}"),
        other => panic!("expected a corrupt-value error, got {other:?}"),
    }
    // A NULL where a flag must be is an error too, not a silent false.
    assert!(r
        .flag("last_ok")
        .unwrap_err()
        .to_string()
        .contains("last_ok"));

    // A column the SELECT does not have: every kind of read names it.
    for err in [
        r.flag("pasued").unwrap_err().to_string(),
        r.opt_flag("pasued").unwrap_err().to_string(),
        r.json::<Value>("pasued").unwrap_err().to_string(),
        StoreError::from(r.try_get::<i64, _>("pasued").unwrap_err()).to_string(),
    ] {
        assert!(err.contains("pasued"), "{err}");
    }
}
