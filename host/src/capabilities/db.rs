//! `db`: SQL on named databases. No grants exist yet, so every call is denied.

use super::HostError;
use super::bindings::taskhost::plugin::db::{Host, Rows, Statement, Value};
use crate::runtime::JobState;

impl Host for JobState {
    async fn query(
        &mut self,
        db: String,
        _sql: String,
        _params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, HostError>> {
        self.charge_host_call()?;
        Ok(Err(super::denied(self, format_args!("database {db:?}"))))
    }

    async fn execute(
        &mut self,
        db: String,
        _sql: String,
        _params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        self.charge_host_call()?;
        Ok(Err(super::denied(self, format_args!("database {db:?}"))))
    }

    async fn transaction(
        &mut self,
        db: String,
        _statements: Vec<Statement>,
    ) -> wasmtime::Result<Result<Vec<u64>, HostError>> {
        self.charge_host_call()?;
        Ok(Err(super::denied(self, format_args!("database {db:?}"))))
    }
}
