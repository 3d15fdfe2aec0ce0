//! Why a scheduler operation was refused. Every message names the schedule
//! (and the handler or expression at fault), because these errors reach the
//! user unchanged: at start, from the CLI, or as an HTTP 4xx body.

use crate::schedule::ScheduleError;
use crate::store::StoreError;

/// A refused or failed scheduler operation.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The schedule expression does not parse.
    #[error("schedule {name:?}: invalid schedule {expr:?}: {source}")]
    Expression {
        /// The schedule.
        name: String,
        /// The expression as written.
        expr: String,
        /// What is wrong with it.
        #[source]
        source: ScheduleError,
    },
    /// The time zone is not a known IANA name.
    #[error("schedule {name:?}: {source}")]
    TimeZone {
        /// The schedule.
        name: String,
        /// The lookup error, naming the zone.
        #[source]
        source: ScheduleError,
    },
    /// No loaded plugin provides the handler.
    #[error("schedule {name:?}: no loaded plugin provides handler {handler:?}")]
    UnknownHandler {
        /// The schedule.
        name: String,
        /// The handler it names.
        handler: String,
    },
    /// Another field is invalid (name, queue, attempts).
    #[error("schedule {name:?}: {reason}")]
    Invalid {
        /// The schedule.
        name: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A runtime change to a schedule the config file declares.
    #[error(
        "schedule {0:?} is declared in the config file, which manages it: change or remove it there \
         (a runtime change would be undone at the next start)"
    )]
    ConfigManaged(String),
    /// The config declares two schedules with this name.
    #[error("schedule {0:?} is declared more than once")]
    Duplicate(String),
    /// `add` of a name that is already taken.
    #[error("schedule {0:?} already exists; remove it first")]
    AlreadyExists(String),
    /// No schedule with this name.
    #[error("schedule {0:?} not found")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SchedulerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ScheduleNotFound(name) => Self::NotFound(name),
            other => Self::Store(other),
        }
    }
}
