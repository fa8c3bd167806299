//! The shutdown tree: the roles of one command run under one root token, cancelled by Ctrl-C,
//! SIGTERM or the first role that fails, then get a bounded grace period before they are aborted.

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tickcast_schemas::health::Readiness;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long roles get to finish after a shutdown signal before they are aborted: the readers
/// that stop last share it with the roles they follow.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The roles of one command.
pub(crate) struct Roles {
    /// Root of the shutdown tree: every role and connection watches it.
    pub(crate) shutdown: CancellationToken,
    /// The roles that stop on `shutdown`.
    pub(crate) tasks: JoinSet<anyhow::Result<()>>,
    /// Roles that read what the others write (the archiver), each on a thread of its own: they
    /// stop only once `tasks` have finished, so they see everything written, within the same
    /// grace period. Here, each one's outcome.
    last: JoinSet<anyhow::Result<()>>,
    /// Cancelled once `tasks` have finished (or the grace is over): the stop of `last`.
    last_stop: CancellationToken,
    /// Renders `/metrics`; `None` if another recorder was installed first.
    pub(crate) prometheus: Option<PrometheusHandle>,
    /// The roles' readiness, which `/readyz` reports (registered with [`Roles::ready_when`]).
    readiness: Vec<Readiness>,
}

impl Roles {
    pub(crate) fn new() -> Self {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signal.cancel();
        });
        let prometheus = crate::listeners::install_metrics(&shutdown);
        Self {
            shutdown,
            tasks: JoinSet::new(),
            last: JoinSet::new(),
            last_stop: CancellationToken::new(),
            prometheus,
            readiness: Vec::new(),
        }
    }

    /// Runs a role until `shutdown`.
    pub(crate) fn spawn<E>(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.tasks.spawn(async move { task.await.with_context(|| format!("{name} failed")) });
    }

    /// Runs a role that must stop after every role of [`Roles::spawn`] has: `start` gets the
    /// token that says so. Its failure stops the others, as any role's does.
    ///
    /// It runs on a thread of its own, driven by a runtime of its own: such a role (the
    /// archiver) reads what the others write and its work comes in blocking chunks — Parquet
    /// encoding and compression, fsyncs, tens of ms for a large file — in a process whose other
    /// roles must never wait (the gateways' fan-out shards). The OS schedules its thread beside
    /// the shared runtime's workers instead of the role holding one of them up.
    pub(crate) fn spawn_last<E, F>(
        &mut self,
        name: &'static str,
        start: impl FnOnce(CancellationToken) -> F,
    ) -> anyhow::Result<()>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let task = start(self.last_stop.clone());
        // The role's outcome, from its thread to the set the shutdown waits on.
        let (done, outcome) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("no runtime for its thread")
                    .and_then(|runtime| runtime.block_on(task).map_err(anyhow::Error::from))
                    .with_context(|| format!("{name} failed"));
                let _ = done.send(result);
            })
            .with_context(|| format!("could not start {name}'s thread"))?;
        self.last.spawn(async move {
            outcome.await.unwrap_or_else(|_| Err(anyhow::anyhow!("{name} stopped without saying how")))
        });
        Ok(())
    }

    /// Makes `/readyz` wait for `readiness` too.
    pub(crate) fn ready_when(&mut self, readiness: &Readiness) {
        self.readiness.push(readiness.clone());
    }

    /// What `/readyz` reports: every role registered.
    pub(crate) fn readiness(&self) -> Vec<Readiness> {
        self.readiness.clone()
    }

    /// Waits for every role to finish; returns the first failure.
    pub(crate) async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        let token = self.shutdown.clone();
        let grace_over = async move {
            token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(grace_over);
        loop {
            if self.tasks.is_empty() {
                self.last_stop.cancel();
                if self.last.is_empty() {
                    break;
                }
            }
            let next = tokio::select! {
                next = self.tasks.join_next(), if !self.tasks.is_empty() => next,
                next = self.last.join_next(), if !self.last.is_empty() => next,
                () = &mut grace_over => {
                    let remaining = self.tasks.len() + self.last.len();
                    tracing::warn!(remaining, "grace period over; aborting");
                    self.tasks.abort_all();
                    self.last.abort_all();
                    // Aborted work did not finish what a clean stop finishes (the archiver's
                    // open files, the last commits): the exit status says so.
                    first_error.get_or_insert_with(|| {
                        anyhow::anyhow!(
                            "{remaining} role(s) did not stop within the {} s grace period and were aborted",
                            SHUTDOWN_GRACE.as_secs()
                        )
                    });
                    break;
                }
            };
            match next {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => {
                    tracing::error!("{error:#}");
                    first_error.get_or_insert(error);
                    self.shutdown.cancel();
                }
                Some(Err(join_error)) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!("a role panicked: {join_error}"));
                    self.shutdown.cancel();
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A last role stops only after the others have, and `wait` returns as soon as all are done,
    /// long before the grace. (On the real clock: the last role's thread has a runtime and a
    /// clock of its own.)
    #[tokio::test]
    async fn last_roles_stop_after_the_others_and_nobody_waits_for_the_grace() {
        let mut roles = Roles::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let (seen, token) = (Arc::clone(&order), roles.shutdown.clone());
        roles.spawn("writer", async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen.lock().unwrap().push("writer");
            Ok::<(), std::io::Error>(())
        });
        let seen = Arc::clone(&order);
        roles
            .spawn_last("reader", move |stop| async move {
                stop.cancelled().await;
                seen.lock().unwrap().push("reader");
                Ok::<(), std::io::Error>(())
            })
            .unwrap();
        let started = tokio::time::Instant::now();
        roles.shutdown.cancel();
        roles.wait().await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["writer", "reader"]);
        assert!(started.elapsed() >= Duration::from_millis(50) && started.elapsed() < SHUTDOWN_GRACE);
    }

    /// A failing last role stops the others, and its error is the command's.
    #[tokio::test]
    async fn a_failing_last_role_stops_everything() {
        let mut roles = Roles::new();
        let token = roles.shutdown.clone();
        roles.spawn("writer", async move {
            token.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        roles.spawn_last("reader", |_| async { Err::<(), _>(std::io::Error::other("disk full")) }).unwrap();
        let error = roles.wait().await.unwrap_err();
        assert!(format!("{error:#}").contains("reader failed: disk full"), "{error:#}");
    }

    /// A role that does not stop within the grace is aborted, and the command fails for it:
    /// an aborted stop is not a clean one.
    #[tokio::test(start_paused = true)]
    async fn a_role_aborted_after_the_grace_fails_the_command() {
        let mut roles = Roles::new();
        roles.spawn("stuck", std::future::pending::<Result<(), std::io::Error>>());
        roles.shutdown.cancel();
        let error = roles.wait().await.unwrap_err();
        assert!(format!("{error:#}").contains("did not stop within the 10 s grace"), "{error:#}");
    }
}
