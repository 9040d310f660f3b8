//! The engine against a real SQLite file and the real writer, with a lister whose contacts and
//! failures a test sets: what is queued once, what a dry run leaves, how the watermark moves.

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::configuration::{DatabaseSettings, Synchronous};
use crate::crm::FetchError;
use crate::crm::listing::{ListError, Listed, PageSink};
use crate::domain::event::StoredEvent;
use crate::domain::{ContactDraft, Guest};
use crate::outbox::sqlite::{self, SqliteStore, writer::SqliteCommit};
use crate::outbox::writer::{self, WriterSetup, WriterTask};
use crate::outbox::{Accepted, CrmRecord, NewEvent};

const EVERY: Duration = Duration::from_secs(3600);
const OVERLAP: Duration = Duration::from_secs(900);

/// Lists `contacts` two to a page, failing after `fail_after` pages when set, and remembers
/// each window it was asked for.
#[derive(Default)]
struct FakeLister {
    contacts: Vec<Listed>,
    fail_after: Option<u64>,
    windows: Arc<StdMutex<Vec<Window>>>,
}

#[async_trait::async_trait]
impl Lister for FakeLister {
    fn source(&self) -> &'static str {
        "pipedrive"
    }

    async fn list_counting(
        &self,
        window: Window,
        sink: &mut dyn PageSink,
        stats: &mut ListStats,
    ) -> Result<(), ListError> {
        self.windows.lock().expect("windows").push(window);
        stats.windows = 1;
        for page in self.contacts.chunks(2) {
            if self.fail_after == Some(stats.pages) {
                return Err(FetchError::RateLimited { retry_after: None }.into());
            }
            stats.requests += 1;
            stats.pages += 1;
            sink.page(page.to_vec()).await.map_err(ListError::Sink)?;
        }
        Ok(())
    }
}

fn contact(id: &str, email: Option<&str>) -> Listed {
    let draft = ContactDraft {
        email: email.map(str::to_owned),
        ..ContactDraft::default()
    };
    Listed::from_draft(id, 1_000, draft.into_guest(), "emails", |guest| {
        StoredEvent::Guest { guest }
    })
}

/// Five persons: four with an email, one without.
fn five() -> Vec<Listed> {
    vec![
        contact("1", Some("a@example.com")),
        contact("2", Some("b@example.com")),
        contact("3", Some("c@example.com")),
        contact("4", None),
        contact("5", Some("e@example.com")),
    ]
}

struct Setup {
    _dir: TempDir,
    store: Arc<SqliteStore>,
    writer: WriterHandle,
    _task: WriterTask,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = DatabaseSettings {
        url: None,
        path: dir.path().join("bridge.sqlite"),
        synchronous: Synchronous::Full,
        busy_timeout: Duration::from_secs(5),
        max_connections: 4,
        migrate_on_start: true,
    };
    let store = Arc::new(SqliteStore::open(&settings, true).await.expect("store"));
    let commit = SqliteCommit {
        conn: sqlite::open_writer_connection(&settings)
            .await
            .expect("writer connection"),
        file: store.file(),
        turn: store.write_turn(),
    };
    let setup = WriterSetup {
        max_batch: 64,
        queue_capacity: 1024,
        committed: Arc::default(),
        metrics: Metrics::default(),
    };
    let (writer, writer_task) = writer::spawn(setup, commit);
    Setup {
        _dir: dir,
        store,
        writer,
        _task: writer_task,
    }
}

impl Setup {
    fn reconciler(&self, lister: FakeLister) -> Reconciler {
        let mut reconciler =
            Reconciler::new(self.store.clone(), self.writer.clone(), Metrics::default());
        reconciler.add(Box::new(lister), None, EVERY, OVERLAP);
        reconciler
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.store.pool())
            .await
            .expect(sql)
    }
}

fn request(since: Option<i64>, dry_run: bool) -> RunRequest {
    RunRequest {
        since,
        dry_run,
        note: AuditNote {
            at: now_ms(),
            request_id: None,
            principal: "test",
        },
    }
}

#[tokio::test]
async fn a_reconcile_queues_what_no_webhook_did_and_a_second_run_nothing() {
    let setup = setup().await;
    // Person 2's webhook did arrive.
    let webhook = NewEvent {
        source: "pipedrive",
        event_id: Some("hook-2".into()),
        email: Some("b@example.com".into()),
        crm_record: None,
        payload: StoredEvent::Guest {
            guest: Guest::new("b@example.com"),
        }
        .encode(),
        record: Some(CrmRecord::unseen("2")),
    };
    assert!(matches!(
        setup.writer.append(webhook).await,
        Ok(Accepted::Stored { .. })
    ));
    let reconciler = setup.reconciler(FakeLister {
        contacts: five(),
        ..FakeLister::default()
    });

    let first = reconciler
        .run("pipedrive", request(Some(0), false))
        .await
        .expect("runs");
    let second = reconciler
        .run("pipedrive", request(Some(0), false))
        .await
        .expect("runs");

    let counts = |r: &RunReport| (r.listed, r.queued, r.already, r.refused);
    assert_eq!(counts(&first), (5, 3, 1, 1));
    assert_eq!(first.stats.pages, 3);
    assert_eq!(counts(&second), (5, 0, 5, 0));
    assert_eq!(setup.count("SELECT count(*) FROM outbox").await, 4);
    assert_eq!(
        setup
            .count("SELECT count(*) FROM outbox WHERE email = 'b@example.com'")
            .await,
        1
    );
    assert_eq!(setup.count("SELECT count(*) FROM refused").await, 1);
    assert_eq!(
        setup
            .count("SELECT count(*) FROM crm_records WHERE came_by = 'reconcile'")
            .await,
        3
    );
    assert_eq!(
        setup
            .count("SELECT count(*) FROM admin_audit WHERE action = 'reconcile' AND target = 'pipedrive'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_dry_run_counts_what_a_run_would_do_and_changes_nothing() {
    let setup = setup().await;
    let reconciler = setup.reconciler(FakeLister {
        contacts: five(),
        ..FakeLister::default()
    });

    let report = reconciler
        .run("pipedrive", request(None, true))
        .await
        .expect("runs");

    assert_eq!((report.queued, report.refused, report.already), (4, 1, 0));
    assert_eq!(setup.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(setup.count("SELECT count(*) FROM refused").await, 0);
    let state = setup
        .store
        .reconcile_state("pipedrive")
        .await
        .expect("state");
    assert_eq!((state.watermark, state.runs), (None, 0));
    assert_eq!(
        setup
            .count("SELECT count(*) FROM admin_audit WHERE action = 'reconcile_dry_run'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_watermark_moves_after_a_whole_run_and_the_next_reads_back_the_overlap() {
    let setup = setup().await;
    let windows = Arc::new(StdMutex::new(Vec::new()));
    let reconciler = setup.reconciler(FakeLister {
        contacts: five(),
        windows: windows.clone(),
        ..FakeLister::default()
    });

    let first = reconciler
        .run("pipedrive", request(None, false))
        .await
        .expect("runs");
    let second = reconciler
        .run("pipedrive", request(None, false))
        .await
        .expect("runs");

    let (every, overlap) = (EVERY.as_millis() as i64, OVERLAP.as_millis() as i64);
    // A first run reads back one period and the overlap; the next, from the watermark.
    assert_eq!(first.since, first.until - every - overlap);
    assert_eq!(second.since, first.until - overlap);
    let seen = windows.lock().expect("windows").clone();
    assert_eq!(seen[1].since, first.until - overlap);
    let state = setup
        .store
        .reconcile_state("pipedrive")
        .await
        .expect("state");
    assert_eq!(state.watermark, Some(second.until));
    assert_eq!((state.runs, state.failures), (2, 0));
}

#[tokio::test]
async fn a_run_that_fails_keeps_what_it_queued_and_leaves_the_watermark() {
    let setup = setup().await;
    let reconciler = setup.reconciler(FakeLister {
        contacts: five(),
        fail_after: Some(1),
        ..FakeLister::default()
    });

    let report = reconciler
        .run("pipedrive", request(None, false))
        .await
        .expect("runs");

    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("rate limited"))
    );
    assert_eq!((report.listed, report.queued), (2, 2));
    assert_eq!(setup.count("SELECT count(*) FROM outbox").await, 2);
    let state = setup
        .store
        .reconcile_state("pipedrive")
        .await
        .expect("state");
    assert_eq!(state.watermark, None);
    assert_eq!(state.last_result.as_deref(), Some("failed"));
    assert_eq!(state.failures, 1);
}

#[tokio::test]
async fn a_refused_record_is_queued_once_its_email_arrives_and_only_then() {
    let setup = setup().await;
    let reconciler = setup.reconciler(FakeLister {
        contacts: vec![contact("4", None)],
        ..FakeLister::default()
    });
    reconciler
        .run("pipedrive", request(Some(0), false))
        .await
        .expect("runs");
    let update = |record: &str, id: &str| NewEvent {
        source: "pipedrive",
        event_id: Some(id.into()),
        email: Some("d@example.com".into()),
        crm_record: None,
        payload: StoredEvent::Guest {
            guest: Guest::new("d@example.com"),
        }
        .encode(),
        record: Some(CrmRecord::refused(record)),
    };

    let queued = setup
        .writer
        .append(update("4", "u1"))
        .await
        .expect("commits");
    let again = setup
        .writer
        .append(update("4", "u2"))
        .await
        .expect("commits");
    let never_refused = setup
        .writer
        .append(update("9", "u3"))
        .await
        .expect("commits");

    let Accepted::Stored { id } = queued else {
        panic!("the update of a refused record is queued: {queued:?}");
    };
    assert_eq!(again, Accepted::Duplicate { id });
    assert_eq!(never_refused, Accepted::NotNeeded);
    assert_eq!(
        setup
            .count("SELECT count(*) FROM refused WHERE resolved_outbox_id IS NOT NULL")
            .await,
        1
    );
    // A reconcile now finds the record queued.
    let report = reconciler
        .run("pipedrive", request(Some(0), false))
        .await
        .expect("runs");
    assert_eq!((report.queued, report.already, report.refused), (0, 1, 0));
}

#[tokio::test]
async fn one_run_per_source_at_a_time_and_an_unknown_source_is_not_configured() {
    let setup = setup().await;
    let reconciler = setup.reconciler(FakeLister::default());
    let slot = Running::claim(&reconciler.running, "pipedrive").expect("free");

    let busy = reconciler.run("pipedrive", request(None, false)).await;
    drop(slot);
    let free = reconciler.run("pipedrive", request(None, false)).await;
    let unknown = reconciler.run("zoho", request(None, false)).await;

    assert!(matches!(busy, Err(RunError::Running("pipedrive"))));
    assert!(free.is_ok());
    assert!(matches!(unknown, Err(RunError::NotConfigured(_))));
}
