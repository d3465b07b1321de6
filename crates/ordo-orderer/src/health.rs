//! What `/healthz` checks on an orderer. Fabric's Raft orderer registers no checks and always
//! answers OK; Ordo reports a channel whose chain halted or that has no Raft leader, and a
//! ledger folder that cannot be written.

use std::sync::Arc;

use crate::channel::Relation;
use crate::operations::{FailedCheck, HealthChecker};
use crate::registrar::Registrar;

/// The node's health checks.
pub struct NodeHealth {
    registrar: Arc<Registrar>,
}

impl NodeHealth {
    pub fn new(registrar: Arc<Registrar>) -> NodeHealth {
        NodeHealth { registrar }
    }
}

impl HealthChecker for NodeHealth {
    fn check(&self) -> Vec<FailedCheck> {
        let mut failed = Vec::new();
        for ch in self.registrar.channels() {
            let state = ch.state();
            if let Some(e) = state.halted {
                failed.push(FailedCheck {
                    component: format!("channel {}", ch.name),
                    reason: format!("chain halted: {e}"),
                });
            } else if state.status.leader == 0 && state.relation == Relation::Consenter {
                failed.push(FailedCheck {
                    component: format!("channel {}", ch.name),
                    reason: "no Raft leader".to_string(),
                });
            }
        }
        if let Err(e) = self.registrar.probe_ledger() {
            failed.push(FailedCheck {
                component: "ledger".to_string(),
                reason: e.to_string(),
            });
        }
        failed
    }
}
