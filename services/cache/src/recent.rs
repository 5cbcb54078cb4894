//! The encodings of the prompts this process embedded lately, so that
//! verifying a candidate rarely encodes it again.

use crate::embed::Encoded;
use llmops_core::ids::TenantId;
use std::collections::HashMap;
use std::sync::Arc;

/// A byte-bounded map, oldest out first.
#[derive(Default)]
pub(crate) struct Recent {
    map: HashMap<(TenantId, [u8; 32]), Arc<Encoded>>,
    order: std::collections::VecDeque<(TenantId, [u8; 32])>,
    bytes: usize,
}

/// What `Recent` may hold (about a thousand prompts of twenty pieces).
const RECENT_BYTES: usize = 32 << 20;
/// The largest encoding kept (a prompt of about 40 pieces): long prompts
/// are rarely asked twice, and would crowd out the rest.
const RECENT_ENTRY_BYTES: usize = 64 << 10;

impl Recent {
    fn key(tenant: TenantId, text: &str) -> (TenantId, [u8; 32]) {
        use sha2::{Digest, Sha256};
        (tenant, Sha256::digest(text.as_bytes()).into())
    }

    fn size(e: &Encoded) -> usize {
        4 * (e.states.len() + e.pooled.len()) + e.pieces.iter().map(|p| p.len() + 24).sum::<usize>()
    }

    pub(crate) fn get(&self, tenant: TenantId, text: &str) -> Option<Arc<Encoded>> {
        self.map.get(&Self::key(tenant, text)).cloned()
    }

    pub(crate) fn put(&mut self, tenant: TenantId, text: &str, e: Arc<Encoded>) {
        let key = Self::key(tenant, text);
        let size = Self::size(&e);
        if size > RECENT_ENTRY_BYTES || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + size > RECENT_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.map.remove(&old) {
                self.bytes -= Self::size(&gone);
            }
        }
        self.map.insert(key, e);
        self.order.push_back(key);
        self.bytes += size;
    }
}
