//! Plugin releases deployed through the store (`plugins.lua`): a stack of
//! digests per plugin name and a generation counter in scripts, the
//! components as plain keys by digest. A component is written before the
//! release that names it, and under its digest, so writing it twice or
//! leaving it behind after a refused release changes nothing.

use redis::Value;

use super::RedisStore;
use super::codec::{array, int, text, time};
use super::scripts::PLUGINS;
use crate::store::{PluginRelease, PluginReleases, StoreError, StoreResult};

impl RedisStore {
    fn blob_key(&self, digest: &str) -> String {
        self.key(&format!("plugin_blob:{digest}"))
    }

    fn release(name: &str, digest: &Value, at: &Value) -> StoreResult<PluginRelease> {
        Ok(PluginRelease {
            name: name.to_owned(),
            digest: text(digest)?,
            deployed_at: time(int(at)?)?,
        })
    }

    pub(super) async fn deploy_plugin(
        &self,
        name: &str,
        digest: &str,
        bytes: Vec<u8>,
    ) -> StoreResult<PluginRelease> {
        self.query::<Value>(redis::cmd("SET").arg(self.blob_key(digest)).arg(bytes))
            .await?;
        let args = ["put".to_owned(), name.to_owned(), digest.to_owned()];
        let reply = self.run(&PLUGINS, &args).await?;
        let reply = array(&reply)?;
        Self::release(name, &reply[0], &reply[1])
    }

    pub(super) async fn stored_plugin(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(self.blob_key(digest)))
            .await
    }

    pub(super) async fn stored_plugin_generation(&self) -> StoreResult<u64> {
        let generation: Option<u64> = self
            .query(redis::cmd("GET").arg(self.key("plugin_gen")))
            .await?;
        Ok(generation.unwrap_or(0))
    }

    pub(super) async fn stored_plugin_releases(&self) -> StoreResult<PluginReleases> {
        let reply = self.run(&PLUGINS, &["releases".to_owned()]).await?;
        let reply = array(&reply)?;
        let mut releases = reply[1..]
            .chunks(3)
            .map(|r| Self::release(&text(&r[0])?, &r[1], &r[2]))
            .collect::<StoreResult<Vec<_>>>()?;
        releases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(PluginReleases {
            generation: int(&reply[0])? as u64,
            releases,
        })
    }

    pub(super) async fn roll_back_plugin(&self, name: &str) -> StoreResult<PluginRelease> {
        let reply = self
            .run(&PLUGINS, &["rollback".to_owned(), name.to_owned()])
            .await?;
        let reply = array(&reply)?;
        match text(&reply[0])?.as_str() {
            "none" => Err(StoreError::Invalid(format!(
                "plugin {name:?} was never deployed through the store"
            ))),
            "only" => Err(StoreError::Invalid(format!(
                "plugin {name:?} has no earlier deployed version to roll back to (only sha256:{})",
                text(&reply[1])?
            ))),
            _ => Self::release(name, &reply[0], &reply[1]),
        }
    }
}
