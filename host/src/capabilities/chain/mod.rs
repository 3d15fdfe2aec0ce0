//! `chain`: EVM JSON-RPC on the chains `[chains.NAME]` names, for the
//! plugins whose `[plugins.NAME] chains = ["NAME", …]` grants them. No
//! grant: `denied`, logged and counted.
//!
//! Every call is charged to the job's host-call budget first and runs in a
//! `chain` span that carries the job id. A JSON-RPC error from the node
//! comes back as `remote` (code and message); transient failures are
//! retried by [`rpc::RpcClient`] and, once retries are spent, come back as
//! `failed` or `timeout` naming the node by its origin only. When the chain
//! sets `chain_id`, the first call checks `eth_chainId` and a mismatch
//! refuses every call on that chain.
//!
//! Amounts (`value`, balances) are decimal strings; addresses and hashes
//! come back lower-cased.

mod logs;
mod rpc;
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value as Json, json};
use tracing::Instrument;

use super::HostError;
use super::bindings::taskhost::plugin::chain::{Host, Receipt, Transaction, TransferLog};
use super::bindings::taskhost::plugin::types::RemoteError;
use crate::config::{ChainSettings, Config};
use crate::runtime::JobState;

pub(crate) use rpc::RpcError;

/// Counters over every plugin's `chain` calls.
#[derive(Debug, Default)]
pub struct ChainCounters {
    pub calls: AtomicU64,
    pub denied: AtomicU64,
    pub failed: AtomicU64,
}

/// What `eth_chainId` said, once it has said something definite.
type ChainIdCheck = tokio::sync::OnceCell<Result<(), String>>;

struct Chain {
    name: String,
    settings: ChainSettings,
    client: rpc::RpcClient,
    chain_id_check: ChainIdCheck,
}

impl Chain {
    async fn call(&self, method: &str, params: &Json) -> Result<Json, HostError> {
        self.check_chain_id().await?;
        self.client
            .call(method, params)
            .await
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: RpcError) -> HostError {
        let chain = &self.name;
        match e {
            RpcError::Remote { code, message } => HostError::Remote(RemoteError { code, message }),
            RpcError::Failed(m) => HostError::Failed(format!("chain {chain:?}: {m}")),
            RpcError::Timeout(m) => HostError::Timeout(format!("chain {chain:?}: {m}")),
        }
    }

    /// Refuses calls when the node is on another chain than configured.
    async fn check_chain_id(&self) -> Result<(), HostError> {
        let Some(expected) = self.settings.chain_id else {
            return Ok(());
        };
        let checked = self
            .chain_id_check
            .get_or_try_init(|| async {
                match self.client.call("eth_chainId", &json!([])).await {
                    Ok(id) => Ok(match types::quantity(&id, "eth_chainId") {
                        Ok(actual) if actual == expected => Ok(()),
                        Ok(actual) => Err(format!(
                            "chain {:?}: the node reports chain id {actual}, but the config says chain_id = {expected}; refusing to use it",
                            self.name
                        )),
                        Err(e) => Err(format!("chain {:?}: {e}", self.name)),
                    }),
                    // Not definite: check again on the next call.
                    Err(e) => Err(self.error(e)),
                }
            })
            .await?;
        checked.clone().map_err(HostError::Failed)
    }
}

/// The configured chains, shared by every job.
#[derive(Default)]
pub struct Chains {
    by_name: BTreeMap<String, Arc<Chain>>,
    counters: ChainCounters,
}

impl Chains {
    /// Checks every chain's settings and every grant: a grant of an
    /// unknown chain is an error.
    pub fn from_config(config: &Config) -> Result<Chains, String> {
        for (plugin, grants) in &config.plugins {
            for chain in &grants.chains {
                if !config.chains.contains_key(chain) {
                    return Err(format!(
                        "[plugins.{plugin}] grants chain {chain:?}, which no [chains.{chain}] table defines"
                    ));
                }
            }
        }
        let tls = super::http::client::tls_connector();
        let mut by_name = BTreeMap::new();
        for (name, settings) in &config.chains {
            let fail = |e: String| format!("[chains.{name}]: {e}");
            if settings.timeout.is_zero() {
                return Err(fail("timeout must be positive".into()));
            }
            if settings.log_window == 0 {
                return Err(fail("log_window must be at least 1".into()));
            }
            let client = rpc::RpcClient::new(settings, tls.clone()).map_err(fail)?;
            by_name.insert(
                name.clone(),
                Arc::new(Chain {
                    name: name.clone(),
                    settings: settings.clone(),
                    client,
                    chain_id_check: ChainIdCheck::new(),
                }),
            );
        }
        Ok(Chains {
            by_name,
            counters: ChainCounters::default(),
        })
    }

    pub fn counters(&self) -> &ChainCounters {
        &self.counters
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

fn failed(chain: &str, what: impl std::fmt::Display) -> HostError {
    HostError::Failed(format!("chain {chain:?}: {what}"))
}

impl JobState {
    /// Charges the call, then finds the chain; a plugin without a grant is
    /// refused (logged and counted).
    fn chain_for(
        &mut self,
        chain: &str,
        op: &'static str,
    ) -> wasmtime::Result<Result<Arc<Chain>, HostError>> {
        self.charge_host_call()?;
        let services = self.services();
        let shared = &services.shared.chain;
        shared.counters.calls.fetch_add(1, Ordering::Relaxed);
        let found = services
            .grants
            .chains
            .iter()
            .any(|c| c == chain)
            .then(|| shared.by_name.get(chain).cloned())
            .flatten();
        Ok(match found {
            Some(found) => Ok(found),
            None => {
                shared.counters.denied.fetch_add(1, Ordering::Relaxed);
                let denied = super::denied(self, format_args!("chain {chain:?} (for {op})"));
                Err(denied)
            }
        })
    }

    /// Runs `work` on a granted chain inside a span carrying the job id,
    /// counting failures.
    async fn chain_call<T, F, Fut>(
        &mut self,
        chain: &str,
        op: &'static str,
        work: F,
    ) -> wasmtime::Result<Result<T, HostError>>
    where
        F: FnOnce(Arc<Chain>) -> Fut,
        Fut: std::future::Future<Output = Result<T, HostError>>,
    {
        let found = match self.chain_for(chain, op)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let span = tracing::info_span!(
            "chain",
            job_id = %self.identity().job_id,
            plugin = %self.plugin(),
            chain = %chain,
            op,
        );
        let result = work(found).instrument(span.clone()).await;
        if let Err(e) = &result {
            self.services()
                .shared
                .chain
                .counters
                .failed
                .fetch_add(1, Ordering::Relaxed);
            let error = super::plugin_text(self, &format!("{e:?}"));
            span.in_scope(|| tracing::debug!(error, "chain call failed"));
        }
        Ok(result)
    }
}

fn invalid(e: String) -> HostError {
    HostError::Invalid(e)
}

async fn receipt(chain: &Chain, hash: &str) -> Result<Option<Receipt>, HostError> {
    let r = chain
        .call("eth_getTransactionReceipt", &json!([hash]))
        .await?;
    if r.is_null() {
        return Ok(None);
    }
    let read = || -> Result<Option<Receipt>, String> {
        // A pending receipt (some nodes) has no block yet.
        let Some(block_number) = types::opt_quantity(r.get("blockNumber"), "blockNumber")? else {
            return Ok(None);
        };
        Ok(Some(Receipt {
            transaction_hash: types::text(r.get("transactionHash"), "transactionHash")?,
            success: types::opt_quantity(r.get("status"), "status")? == Some(1),
            block_number,
            gas_used: types::quantity(r.get("gasUsed").unwrap_or(&Json::Null), "gasUsed")?,
            contract_address: types::opt_text(r.get("contractAddress"), "contractAddress")?,
        }))
    };
    read().map_err(|e| failed(&chain.name, format_args!("unreadable receipt: {e}")))
}

async fn block_number(chain: &Chain) -> Result<u64, HostError> {
    let n = chain.call("eth_blockNumber", &json!([])).await?;
    types::quantity(&n, "eth_blockNumber").map_err(|e| failed(&chain.name, e))
}

impl Host for JobState {
    async fn rpc(
        &mut self,
        chain: String,
        method: String,
        params: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.chain_call(&chain, "rpc", |c| async move {
            if method.is_empty()
                || !method
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(HostError::Invalid(format!(
                    "not a JSON-RPC method name: {method:?}"
                )));
            }
            let params: Json = if params.trim().is_empty() {
                json!([])
            } else {
                serde_json::from_str(&params)
                    .map_err(|e| HostError::Invalid(format!("params-json is not JSON: {e}")))?
            };
            if !(params.is_array() || params.is_object()) {
                return Err(HostError::Invalid(
                    "params-json must be a JSON array or object".into(),
                ));
            }
            Ok(c.call(&method, &params).await?.to_string())
        })
        .await
    }

    async fn block_number(&mut self, chain: String) -> wasmtime::Result<Result<u64, HostError>> {
        self.chain_call(
            &chain,
            "block-number",
            |c| async move { block_number(&c).await },
        )
        .await
    }

    async fn get_transaction(
        &mut self,
        chain: String,
        hash: String,
    ) -> wasmtime::Result<Result<Option<Transaction>, HostError>> {
        self.chain_call(&chain, "get-transaction", |c| async move {
            let hash = types::hash_arg(&hash).map_err(invalid)?;
            let t = c.call("eth_getTransactionByHash", &json!([hash])).await?;
            if t.is_null() {
                return Ok(None);
            }
            let read = || -> Result<Transaction, String> {
                Ok(Transaction {
                    hash: types::text(t.get("hash"), "hash")?,
                    from: types::text(t.get("from"), "from")?,
                    to: types::opt_text(t.get("to"), "to")?,
                    value: types::amount(t.get("value").unwrap_or(&Json::Null), "value")?,
                    block_number: types::opt_quantity(t.get("blockNumber"), "blockNumber")?,
                })
            };
            read()
                .map(Some)
                .map_err(|e| failed(&c.name, format_args!("unreadable transaction: {e}")))
        })
        .await
    }

    async fn get_receipt(
        &mut self,
        chain: String,
        hash: String,
    ) -> wasmtime::Result<Result<Option<Receipt>, HostError>> {
        self.chain_call(&chain, "get-receipt", |c| async move {
            let hash = types::hash_arg(&hash).map_err(invalid)?;
            receipt(&c, &hash).await
        })
        .await
    }

    async fn confirmations(
        &mut self,
        chain: String,
        hash: String,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        self.chain_call(&chain, "confirmations", |c| async move {
            let hash = types::hash_arg(&hash).map_err(invalid)?;
            let Some(r) = receipt(&c, &hash).await? else {
                return Ok(0);
            };
            let latest = block_number(&c).await?;
            Ok(if latest >= r.block_number {
                latest - r.block_number + 1
            } else {
                // A node behind the one that gave the receipt: not yet seen.
                0
            })
        })
        .await
    }

    async fn required_confirmations(
        &mut self,
        chain: String,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        self.chain_call(&chain, "required-confirmations", |c| async move {
            Ok(c.settings.confirmations)
        })
        .await
    }

    async fn balance(
        &mut self,
        chain: String,
        address: String,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.chain_call(&chain, "balance", |c| async move {
            let address = types::address_arg(&address, "address").map_err(invalid)?;
            let b = c
                .call("eth_getBalance", &json!([address, "latest"]))
                .await?;
            types::amount(&b, "eth_getBalance").map_err(|e| failed(&c.name, e))
        })
        .await
    }

    async fn erc20_transfers(
        &mut self,
        chain: String,
        token: String,
        to: String,
        from_block: u64,
        to_block: u64,
    ) -> wasmtime::Result<Result<Vec<TransferLog>, HostError>> {
        self.chain_call(&chain, "erc20-transfers", |c| async move {
            let token = types::address_arg(&token, "token").map_err(invalid)?;
            let to = types::address_arg(&to, "to").map_err(invalid)?;
            if from_block > to_block {
                return Err(HostError::Invalid(format!(
                    "from-block {from_block} is after to-block {to_block}"
                )));
            }
            c.check_chain_id().await?;
            logs::transfers(
                &c.client,
                c.settings.log_window,
                &token,
                &to,
                from_block,
                to_block,
            )
            .await
            .map_err(|e| c.error(e))
        })
        .await
    }
}
