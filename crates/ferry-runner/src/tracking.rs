//! The MLflow endpoint stages log to: the recorder's server, or a loopback
//! `ferry_tracking::Embedded` over the project's store, with the variables
//! that point a stage's MLflow client at the pipeline's run.
//!
//! The run's setup makes it; it starts when the first stage runs a command
//! (a run that only finds stages up to date or restores them starts no
//! server) and stops when the stages are done. `FERRY_NO_TRACKING` turns it
//! off.

use crate::Project;
use crate::record::{Recorder, Started};
use crate::report::Reporter;

pub(crate) struct Tracking<'a> {
    project: &'a Project,
    recorder: &'a dyn Recorder,
    started: &'a Started,
    state: State,
}

enum State {
    /// Not needed yet.
    Idle,
    /// Started (or tried, or turned off): these variables point stages at it.
    Up {
        vars: Vec<(String, String)>,
        server: Option<ferry_tracking::Embedded>,
    },
}

impl<'a> Tracking<'a> {
    pub fn new(project: &'a Project, recorder: &'a dyn Recorder, started: &'a Started) -> Self {
        Self {
            project,
            recorder,
            started,
            state: State::Idle,
        }
    }

    /// The variables a stage about to run gets for the endpoint (none when it
    /// is off or could not start: the reporter hears why, once). The first
    /// call starts it.
    pub fn vars(&mut self, reporter: &dyn Reporter) -> &[(String, String)] {
        if matches!(self.state, State::Idle) {
            self.state = self.start(reporter);
        }
        match &self.state {
            State::Up { vars, .. } => vars,
            State::Idle => &[],
        }
    }

    fn start(&self, reporter: &dyn Reporter) -> State {
        let off = State::Up {
            vars: vec![],
            server: None,
        };
        if std::env::var_os("FERRY_NO_TRACKING").is_some() {
            return off;
        }
        let endpoint = match self.recorder.tracking_uri() {
            Some(uri) => Ok((uri, None)),
            None => ferry_tracking::Embedded::start(
                &self.project.layout().store_url(),
                &self.project.layout().artifacts(),
            )
            .map(|srv| (srv.url(), Some(srv))),
        };
        match endpoint {
            Ok((uri, server)) => State::Up {
                vars: vec![
                    ("MLFLOW_TRACKING_URI".into(), uri),
                    ("MLFLOW_RUN_ID".into(), self.started.run_id.clone()),
                    (
                        "MLFLOW_EXPERIMENT_ID".into(),
                        self.started.experiment_id.to_string(),
                    ),
                ],
                server,
            },
            Err(e) => {
                reporter.line(
                    "ferry",
                    ferry_executor::Stream::Stderr,
                    &format!("MLflow endpoint for stages not started: {e}"),
                );
                off
            }
        }
    }

    /// The stages are done: an embedded server stops.
    pub fn stop(&mut self) {
        if let State::Up { server, .. } = &mut self.state {
            drop(server.take());
        }
    }
}
