#![allow(missing_docs)]
//! The built-in key-value store, through `ctx.store()` and its request events.

use edri::prelude::*;
use edri::{Changed, Store};
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
    Edri::builder().only_explicit().manager(Idle).start().await.unwrap()
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

/// Run as a child by `acknowledged_values_survive_kill_9`: writes 1 000 keys into the durable
/// store named by `EDRI_STORE_CHILD`, says so, then waits to be killed.
#[tokio::test]
async fn child_writer() {
    let Some(path) = std::env::var_os("EDRI_STORE_CHILD") else { return };
    let running = Edri::builder()
        .only_explicit()
        .manager(Idle)
        .store(Store::durable(path).unwrap())
        .start()
        .await
        .unwrap();
    for i in 0..1_000u32 {
        running.ctx().store().set(&format!("k/{i:04}"), &i).await.unwrap();
    }
    println!("acked 1000");
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(running);
}

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

    let running = Edri::builder()
        .only_explicit()
        .manager(Idle)
        .store(Store::durable(&path).unwrap())
        .start()
        .await
        .unwrap();
    let all: Vec<(String, u32)> = running.ctx().store().list("k/").await.unwrap();
    assert_eq!(all.len(), 1_000);
    assert!(
        all.iter().enumerate().all(|(i, (k, v))| *v as usize == i && *k == format!("k/{i:04}"))
    );
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
