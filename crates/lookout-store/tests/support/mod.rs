//! What the storage suites share: a store on either backend, and `both!`, which turns one test
//! into a SQLite and a PostgreSQL variant.
#![allow(dead_code)]

use lookout_store::{Backend, Store};
use lookout_testkit::PgDatabase;

/// A store on one backend, with whatever keeps its database alive.
pub struct Fixture {
    pub store: Store,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
    pub url: String,
}

pub async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match backend {
        Backend::Sqlite => (Store::sqlite_url_for_dir(dir.path()), None),
        Backend::Postgres => {
            let db = PgDatabase::create().await;
            (db.url().to_string(), Some(db))
        }
    };
    let store = Store::open(&url).await.unwrap();
    Fixture {
        store,
        _dir: dir,
        _pg: pg,
        url,
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::fixture(super::Backend::Sqlite).await).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::fixture(super::Backend::Postgres).await).await }
            )*
        }
    };
}
