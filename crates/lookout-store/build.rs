//! Embeds the schema migrations: every `migrations/<backend>/NNNN_name.sql`, so adding a
//! migration is adding one file per backend. The build fails when the two backends' files
//! differ in version or name, or when a version is missing, since a schema that exists on one
//! backend only would break the other at start.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let (version, label) = stem
            .split_once('_')
            .unwrap_or_else(|| panic!("{name}: migrations are named NNNN_name.sql"));
        let version: i64 = version
            .parse()
            .unwrap_or_else(|_| panic!("{name}: migrations are named NNNN_name.sql"));
        if let Some(other) = out.insert(version, label.to_string()) {
            panic!(
                "{}: version {version} twice ({other}, {label})",
                dir.display()
            );
        }
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let sqlite = files(&root.join("sqlite"));
    let postgres = files(&root.join("postgres"));
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must hold the same versions and names"
    );
    let mut code = String::from(
        "/// Every migration, oldest first (generated from `migrations/` by build.rs).\n",
    );
    code.push_str("const MIGRATIONS: &[Migration] = &[\n");
    for (i, (version, name)) in sqlite.iter().enumerate() {
        assert_eq!(
            Ok(*version),
            i64::try_from(i + 1),
            "migration versions must run 1, 2, 3… without gaps"
        );
        let file = format!("{version:04}_{name}.sql");
        for backend in ["sqlite", "postgres"] {
            println!(
                "cargo:rerun-if-changed={}",
                root.join(backend).join(&file).display()
            );
        }
        writeln!(
            code,
            "    Migration {{ version: {version}, name: {name:?}, \
             sqlite: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/migrations/sqlite/{file}\")), \
             postgres: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/migrations/postgres/{file}\")) }},"
        )
        .expect("writing to a string");
    }
    code.push_str("];\n\n/// The schema version this build expects (the newest migration).\n");
    writeln!(code, "pub const SCHEMA_VERSION: i64 = {};", sqlite.len())
        .expect("writing to a string");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(out, code).expect("writing migrations.rs");
}
