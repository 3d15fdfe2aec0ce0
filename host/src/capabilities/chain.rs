//! `chain`: EVM JSON-RPC on named chains. No grants exist yet, so every call
//! is denied.

use super::HostError;
use super::bindings::taskhost::plugin::chain::{Host, Receipt, Transaction, TransferLog};
use crate::runtime::JobState;

impl JobState {
    fn chain_denied(&mut self, chain: &str) -> wasmtime::Result<HostError> {
        self.charge_host_call()?;
        Ok(super::denied(self, format_args!("chain {chain:?}")))
    }
}

impl Host for JobState {
    async fn rpc(
        &mut self,
        chain: String,
        _method: String,
        _params: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn block_number(&mut self, chain: String) -> wasmtime::Result<Result<u64, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn get_transaction(
        &mut self,
        chain: String,
        _hash: String,
    ) -> wasmtime::Result<Result<Option<Transaction>, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn get_receipt(
        &mut self,
        chain: String,
        _hash: String,
    ) -> wasmtime::Result<Result<Option<Receipt>, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn confirmations(
        &mut self,
        chain: String,
        _hash: String,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn required_confirmations(
        &mut self,
        chain: String,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn balance(
        &mut self,
        chain: String,
        _address: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }

    async fn erc20_transfers(
        &mut self,
        chain: String,
        _token: String,
        _to: String,
        _from_block: u64,
        _to_block: u64,
    ) -> wasmtime::Result<Result<Vec<TransferLog>, HostError>> {
        Ok(Err(self.chain_denied(&chain)?))
    }
}
