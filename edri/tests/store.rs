#![allow(missing_docs)]
//! The built-in key-value store, through `ctx.store()` and its request events. Stored values
//! carry their type: a read, a list, a `Changed`, a compare-and-set or an increment through
//! another type is `Invalid` naming both types, in memory, in a durable file and across
//! routers; a durable file of the format from before is refused at open. Tests of the durable
//! file need the `durable` feature, those across routers the `switch` feature.

use edri::prelude::*;
use edri::store::StoredValue;
use edri::{Changed, Store};
#[cfg(feature = "durable")]
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Price {
    pub currency: String,
    pub cents: u64,
}

/// A manager that does nothing: a router needs at least one of the user's managers.
#[derive(Default)]
pub struct Idle;

#[event(notification)]
pub struct Nudge;

#[manager(manual)]
impl Idle {
    #[solve]
    fn nudge(&mut self, _: &Nudge) {}
}

async fn start() -> edri::Running {
    start_with(Store::memory()).await
}

async fn start_with(store: Store) -> edri::Running {
    Edri::builder().only_explicit().manager(Idle).store(store).start().await.unwrap()
}

#[tokio::test]
async fn typed_values_and_a_wrong_type_is_invalid() {
    let running = start().await;
    let store = running.ctx().store();
    let eur = Price { currency: "EUR".into(), cents: 108 };
    assert!(!store.set("prices/eur", &eur).await.unwrap());
    assert!(store.set("prices/eur", &eur).await.unwrap(), "second set replaces");
    assert_eq!(store.get::<Price>("prices/eur").await.unwrap(), Some(eur.clone()));
    assert_eq!(store.get::<Price>("prices/usd").await.unwrap(), None);
    let err = store.get::<Vec<String>>("prices/eur").await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid, "{err}");
    assert!(err.message().contains("prices/eur"), "{err}");
    store.set("prices/gbp", &Price { currency: "GBP".into(), cents: 126 }).await.unwrap();
    store.set("other", &1u8).await.unwrap();
    let listed: Vec<(String, Price)> = store.list("prices/").await.unwrap();
    assert_eq!(
        listed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["prices/eur", "prices/gbp"]
    );
    assert!(store.delete("prices/eur").await.unwrap());
    assert!(!store.delete("prices/eur").await.unwrap());
    running.shutdown().await.unwrap();
}

#[event(notification)]
pub struct Go;

macro_rules! incrementers {
    ($($name:ident),*) => {$(
        pub struct $name { done: mpsc::UnboundedSender<()> }

        #[manager(manual)]
        impl $name {
            #[solve]
            fn go(&mut self, _: &Go, ctx: &Ctx) {
                // 100 increments in flight at once from this manager.
                for _ in 0..100 {
                    let (ctx, done) = (ctx.clone(), self.done.clone());
                    ctx.clone().spawn(async move {
                        ctx.store().increment("counter", 1).await.unwrap();
                        done.send(()).ok();
                    });
                }
            }
        }
    )*};
}

incrementers!(I0, I1, I2, I3, I4, I5, I6, I7, I8, I9);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_increments_from_ten_managers() {
    let (done, mut finished) = mpsc::unbounded_channel();
    let d = || done.clone();
    let running = Edri::builder()
        .only_explicit()
        .manager(I0 { done: d() })
        .manager(I1 { done: d() })
        .manager(I2 { done: d() })
        .manager(I3 { done: d() })
        .manager(I4 { done: d() })
        .manager(I5 { done: d() })
        .manager(I6 { done: d() })
        .manager(I7 { done: d() })
        .manager(I8 { done: d() })
        .manager(I9 { done: d() })
        .start()
        .await
        .unwrap();
    running.ctx().notify(Go).await.unwrap();
    for _ in 0..1_000 {
        tokio::time::timeout(Duration::from_secs(10), finished.recv()).await.unwrap().unwrap();
    }
    assert_eq!(running.ctx().store().get::<i64>("counter").await.unwrap(), Some(1_000));
    assert_eq!(running.ctx().store().increment("counter", -1_000).await.unwrap(), 0);
    running.ctx().store().set("text", "not a number").await.unwrap();
    let err = running.ctx().store().increment("text", 1).await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn compare_and_set_wins_and_loses() {
    let running = start().await;
    let store = running.ctx().store();
    // Absent expected: wins once, then loses.
    assert!(store.compare_and_set("lock", None, Some(&"me")).await.unwrap());
    assert!(!store.compare_and_set("lock", None, Some(&"you")).await.unwrap());
    // Wrong expected value loses and leaves the value alone; the right one wins.
    assert!(!store.compare_and_set("lock", Some(&"you"), Some(&"them")).await.unwrap());
    assert_eq!(store.get::<String>("lock").await.unwrap().as_deref(), Some("me"));
    assert!(store.compare_and_set("lock", Some(&"me"), None::<&&str>).await.unwrap());
    assert_eq!(store.get::<String>("lock").await.unwrap(), None);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let running = start().await;
    let store = running.ctx().store();
    store.set_with_ttl("session", &42u32, Duration::from_millis(100)).await.unwrap();
    store.set("forever", &1u32).await.unwrap();
    assert_eq!(store.get::<u32>("session").await.unwrap(), Some(42));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.get::<u32>("session").await.unwrap(), None);
    assert_eq!(store.list::<u32>("").await.unwrap(), [("forever".to_owned(), 1)]);
    assert!(!store.delete("session").await.unwrap(), "an expired key does not count as existing");
    running.shutdown().await.unwrap();
}

#[event(notification)]
pub struct StartWatching;

/// `(key, new value)` of each change a watcher saw.
type Seen = Arc<Mutex<Vec<(String, Option<u64>)>>>;

/// Watches `prices/` and records what changes.
pub struct Watcher {
    seen: Seen,
    ready: mpsc::UnboundedSender<()>,
}

#[manager(manual)]
impl Watcher {
    #[solve]
    async fn start(&mut self, _: &StartWatching, ctx: &Ctx) {
        ctx.store().watch("prices/").await.unwrap();
        self.ready.send(()).ok();
    }

    #[solve]
    fn changed(&mut self, ev: &Changed) {
        self.seen.lock().unwrap().push((ev.key.clone(), ev.value::<u64>().unwrap()));
    }
}

#[tokio::test]
async fn watch_delivers_changes_under_its_prefix_only() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ready, mut is_ready) = mpsc::unbounded_channel();
    let running = Edri::builder()
        .only_explicit()
        .manager(Watcher { seen: seen.clone(), ready })
        .start()
        .await
        .unwrap();
    let store = running.ctx().store();
    // Outside a manager there is no mailbox to deliver to.
    assert_eq!(store.watch("x").await.unwrap_err().status(), Status::Invalid);
    store.set("prices/before", &0u64).await.unwrap();
    running.ctx().notify(StartWatching).await.unwrap();
    is_ready.recv().await.unwrap();
    store.set("prices/eur", &108u64).await.unwrap();
    store.set("weather/today", &21u64).await.unwrap();
    store.increment("weather/counter", 1).await.unwrap();
    store.set("prices/eur", &109u64).await.unwrap();
    store.delete("prices/eur").await.unwrap();
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("prices/eur".to_owned(), Some(108)),
            ("prices/eur".to_owned(), Some(109)),
            ("prices/eur".to_owned(), None)
        ]
    );
    running.shutdown().await.unwrap();
}

#[cfg(feature = "durable")]
/// Run as a child by `acknowledged_values_survive_kill_9`: writes 1 000 keys into the durable
/// store named by `EDRI_STORE_CHILD`, says so, then waits to be killed.
#[tokio::test]
async fn child_writer() {
    let Some(path) = std::env::var_os("EDRI_STORE_CHILD") else { return };
    let running = start_with(Store::durable(path).unwrap()).await;
    for i in 0..1_000u32 {
        running.ctx().store().set(&format!("k/{i:04}"), &i).await.unwrap();
    }
    println!("acked 1000");
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(running);
}

#[cfg(feature = "durable")]
#[tokio::test]
async fn acknowledged_values_survive_kill_9() {
    use tokio::io::AsyncBufReadExt;
    if std::env::var_os("EDRI_STORE_CHILD").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("edri-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.redb");
    let _ = std::fs::remove_file(&path);
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env("EDRI_STORE_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let acked = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("acked 1000") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(acked, "the child did not acknowledge its writes");
    child.start_kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().await.unwrap();

    let running = start_with(Store::durable(&path).unwrap()).await;
    let all: Vec<(String, u32)> = running.ctx().store().list("k/").await.unwrap();
    assert_eq!(all.len(), 1_000);
    assert!(
        all.iter().enumerate().all(|(i, (k, v))| *v as usize == i && *k == format!("k/{i:04}"))
    );
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

// ----- types of stored values ---------------------------------------------------------------

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cents {
    pub cents: u32,
}

mod v2 {
    /// `Cents` after a field was added: another shape under the same name.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Cents {
        pub cents: u32,
        pub currency: Option<String>,
    }
}

fn assert_names(failure: &Failure, key: &str, stored: &str, wanted: &str) {
    assert_eq!(failure.status(), Status::Invalid, "{failure}");
    let text = failure.message();
    for part in [format!("`{key}`"), format!("`{stored}`"), format!("`{wanted}`")] {
        assert!(text.contains(&part), "{part} missing from: {text}");
    }
}

/// The reads of the issue, on a router with the given store.
async fn reads_through_another_type_are_invalid(store: Store) {
    let running = start_with(store).await;
    let store = running.ctx().store();

    store.set("price", &300u32).await.unwrap();
    let err = store.get::<i32>("price").await.unwrap_err();
    assert_names(&err, "price", "u32", "i32");
    assert_eq!(store.get::<u32>("price").await.unwrap(), Some(300));
    let err = store.get::<u64>("price").await.unwrap_err();
    assert_names(&err, "price", "u32", "u64");
    let err = store.increment("price", 1).await.unwrap_err();
    assert_names(&err, "price", "u32", "i64");
    assert_eq!(
        store.get::<u32>("price").await.unwrap(),
        Some(300),
        "a refused increment writes nothing"
    );

    assert_eq!(store.increment("hits", 1).await.unwrap(), 1);
    let err = store.get::<u64>("hits").await.unwrap_err();
    assert_names(&err, "hits", "i64", "u64");
    assert_eq!(store.get::<i64>("hits").await.unwrap(), Some(1));
    assert_eq!(store.increment("hits", 1).await.unwrap(), 2);

    // A list reads every value through the one type: the odd one out is named.
    let err = store.list::<u32>("").await.unwrap_err();
    assert_names(&err, "hits", "i64", "u32");
    assert_eq!(store.list::<i64>("hits").await.unwrap(), [("hits".to_owned(), 2)]);

    // The `i32` 150 has the bytes of the `u32` 300: equal bytes of another type are refused.
    let err = store.compare_and_set("price", Some(&150i32), Some(&1i32)).await.unwrap_err();
    assert_names(&err, "price", "u32", "i32");
    assert!(store.compare_and_set("price", Some(&300u32), Some(&301u32)).await.unwrap());
    assert_eq!(store.get::<u32>("price").await.unwrap(), Some(301));

    // Another version of a struct.
    store.set("item", &Cents { cents: 5 }).await.unwrap();
    let err = store.get::<v2::Cents>("item").await.unwrap_err();
    assert_names(&err, "item", "store::Cents", "store::v2::Cents");
    assert_eq!(store.get::<Cents>("item").await.unwrap(), Some(Cents { cents: 5 }));
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn in_memory_reads_through_another_type_are_invalid() {
    reads_through_another_type_are_invalid(Store::memory()).await;
}

#[cfg(feature = "durable")]
fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edri-store-types-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[cfg(feature = "durable")]
/// Removes a file of [`temp_file`], and its folder once empty.
fn remove(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(feature = "durable")]
#[tokio::test]
async fn durable_reads_through_another_type_are_invalid_and_types_survive_a_reopen() {
    let path = temp_file("typed.redb");
    reads_through_another_type_are_invalid(Store::durable(&path).unwrap()).await;
    let running = start_with(Store::durable(&path).unwrap()).await;
    let store = running.ctx().store();
    assert_eq!(store.get::<u32>("price").await.unwrap(), Some(301));
    assert_names(&store.get::<i32>("price").await.unwrap_err(), "price", "u32", "i32");
    assert_names(&store.get::<u64>("hits").await.unwrap_err(), "hits", "i64", "u64");
    running.shutdown().await.unwrap();
    remove(&path);
}

#[test]
fn a_changed_value_is_read_through_its_type() {
    let change = Changed { key: "n".into(), value: Some(StoredValue::new(&300u32).unwrap()) };
    assert_eq!(change.value::<u32>().unwrap(), Some(300));
    assert_names(&change.value::<i32>().unwrap_err(), "n", "u32", "i32");
    let removed = Changed { key: "n".into(), value: None };
    assert_eq!(removed.value::<i32>().unwrap(), None);
}

/// A value written by another build of a type (same name, another shape) says so.
#[test]
fn another_version_of_a_type_is_named_as_such() {
    let written = StoredValue {
        type_name: std::any::type_name::<v2::Cents>().to_owned(),
        ..StoredValue::new(&Cents { cents: 5 }).unwrap()
    };
    let err = written.read::<v2::Cents>("item").unwrap_err();
    assert_names(&err, "item", "store::v2::Cents", "store::v2::Cents");
    assert!(err.message().contains("two versions of the type"), "{err}");
    let value = StoredValue::new(&v2::Cents { cents: 5, currency: None }).unwrap();
    assert_eq!(value.read::<v2::Cents>("item").unwrap(), v2::Cents { cents: 5, currency: None });
}

#[cfg(feature = "durable")]
/// Writes a redb file with `table` holding `entries`, the way an edri of that format did.
fn write_file(path: &PathBuf, table: &str, entries: &[(&str, &[u8])]) {
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx.open_table(redb::TableDefinition::<&str, &[u8]>::new(table)).unwrap();
        for (key, entry) in entries {
            table.insert(key, entry).unwrap();
        }
    }
    tx.commit().unwrap();
}

#[cfg(feature = "durable")]
#[test]
fn a_durable_file_of_format_1_is_refused_at_open() {
    let path = temp_file("format-1.redb");
    // Format 1: table `edri.store`, each entry the postcard of `{ data: Vec<u8>, expires_at_ms:
    // Option<u64> }`, here the `u32` 300 (varint `ac 02`) that never expires.
    write_file(&path, "edri.store", &[("price", &[2, 0xac, 0x02, 0])]);
    let err = Store::durable(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("holds store format 1"), "{err}");
    assert!(err.contains("before stored values carried their type"), "{err}");
    assert!(err.contains(&format!("reads format {}", edri::store::FORMAT)), "{err}");
    // Refused again on the next try: nothing was changed by the refusal.
    assert!(Store::durable(&path).is_err());
    remove(&path);
}

#[cfg(feature = "durable")]
/// A file of format 1 that holds no value has nothing to misread: it opens, as format 2.
#[tokio::test]
async fn an_empty_durable_file_of_format_1_opens() {
    let path = temp_file("format-1-empty.redb");
    write_file(&path, "edri.store", &[]);
    let store = Store::durable(&path).unwrap();
    let running = start_with(store).await;
    running.ctx().store().set("price", &300u32).await.unwrap();
    running.shutdown().await.unwrap();
    let running = start_with(Store::durable(&path).unwrap()).await;
    assert_eq!(running.ctx().store().get::<u32>("price").await.unwrap(), Some(300));
    running.shutdown().await.unwrap();
    remove(&path);
}

#[cfg(feature = "durable")]
#[test]
fn a_durable_file_of_a_newer_format_is_refused_at_open() {
    let path = temp_file("format-next.redb");
    let next = edri::store::FORMAT + 1;
    write_file(&path, &format!("edri.store/{next}"), &[("price", &[1, 2, 3])]);
    let err = Store::durable(&path).unwrap_err().to_string();
    assert!(err.contains(&format!("holds store format {next}")), "{err}");
    assert!(err.contains("newer"), "{err}");
    remove(&path);
}

#[cfg(feature = "switch")]
const SECRET: &str = "store-types-secret";

#[cfg(feature = "switch")]
/// A router without a store of its own reaches another router's store through a switch: the
/// value crosses twice as postcard and keeps its type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_store_checks_types_too() {
    use edri::{SchedulerManager, StoreManager};
    use std::time::Instant;
    let server = edri::switch::Server::bind("127.0.0.1:0", SECRET).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let hub = tokio::spawn(server.run());
    let switch = |id: &str| edri::switch::Switch::new(addr.clone()).secret(SECRET).id(id);
    let owner = Edri::builder()
        .only_explicit()
        .manager(Idle)
        .switch(switch("owner"))
        .start()
        .await
        .unwrap();
    let user = Edri::builder()
        .only_explicit()
        .manager(Idle)
        .without::<StoreManager>()
        .without::<SchedulerManager>()
        .switch(switch("user"))
        .start()
        .await
        .unwrap();
    let store = user.ctx().store();
    // Until the routers have met, the user has no store to ask.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.set("price", &300u32).await {
            Ok(_) => break,
            Err(e) if e.status() == Status::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("set through the switch: {e}"),
        }
    }
    assert_eq!(owner.ctx().store().get::<u32>("price").await.unwrap(), Some(300));
    assert_names(&store.get::<i32>("price").await.unwrap_err(), "price", "u32", "i32");
    assert_eq!(store.get::<u32>("price").await.unwrap(), Some(300));
    assert_eq!(store.increment("hits", 1).await.unwrap(), 1);
    assert_names(&store.get::<u64>("hits").await.unwrap_err(), "hits", "i64", "u64");
    user.shutdown().await.unwrap();
    owner.shutdown().await.unwrap();
    hub.abort();
}
