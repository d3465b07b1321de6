//! Whether an identity satisfies an `MSPPrincipal`: Fabric's `satisfiesPrincipalInternalV142`,
//! falling back to the V1.3 and pre-V1.3 rules exactly where Fabric does.

use ordo_proto::common::msp_identity_anonymity::MspIdentityAnonymityType;
use ordo_proto::common::msp_principal::Classification;
use ordo_proto::common::msp_role::MspRoleType;
use ordo_proto::common::{
    CombinedPrincipal, MspIdentityAnonymity, MspPrincipal, MspRole, OrganizationUnit,
};
use prost::Message;

use crate::msp::NodeRole;
use crate::{Identity, Msp, MspError};

fn not_satisfied(msg: impl Into<String>) -> MspError {
    MspError::PrincipalNotSatisfied(msg.into())
}

/// Flattens COMBINED principals (any depth): every member must be satisfied.
fn collect(p: &MspPrincipal, out: &mut Vec<MspPrincipal>) -> Result<(), MspError> {
    if p.principal_classification == Classification::Combined as i32 {
        let combined = CombinedPrincipal::decode(p.principal.clone()).map_err(|e| {
            MspError::BadPrincipal(format!(
                "could not unmarshal CombinedPrincipal from principal: {e}"
            ))
        })?;
        if combined.principals.is_empty() {
            return Err(MspError::BadPrincipal(
                "No principals in CombinedPrincipal".to_string(),
            ));
        }
        for sub in &combined.principals {
            collect(sub, out)?;
        }
    } else {
        out.push(p.clone());
    }
    Ok(())
}

impl Msp {
    /// Fabric's `SatisfiesPrincipal` for an identity of this MSP.
    pub fn satisfies_principal(
        &self,
        id: &Identity,
        principal: &MspPrincipal,
    ) -> Result<(), MspError> {
        let mut flat = Vec::new();
        collect(principal, &mut flat)?;
        for p in &flat {
            self.satisfies_one(id, p)?;
        }
        Ok(())
    }

    fn check_msp(&self, principal_msp: &str, id: &Identity) -> Result<(), MspError> {
        if principal_msp != self.name() {
            return Err(not_satisfied(format!(
                "the identity is a member of a different MSP (expected {principal_msp}, got {})",
                id.msp_id()
            )));
        }
        Ok(())
    }

    fn validate_for_role(&self, id: &Identity, role: NodeRole) -> Result<(), MspError> {
        self.validate(id).map_err(|e| {
            not_satisfied(format!(
                "The identity is not valid under this MSP [{}]: {e}",
                self.name()
            ))
        })?;
        self.has_ou_role(id, role).map_err(|e| {
            if role == NodeRole::Admin {
                not_satisfied(format!(
                    "The identity is not an admin under this MSP [{}]: {e}",
                    self.name()
                ))
            } else {
                not_satisfied(format!(
                    "The identity is not a [{}] under this MSP [{}]: {e}",
                    role.fabric_name(),
                    self.name()
                ))
            }
        })
    }

    fn satisfies_one(&self, id: &Identity, p: &MspPrincipal) -> Result<(), MspError> {
        let class = Classification::try_from(p.principal_classification).map_err(|_| {
            MspError::BadPrincipal(format!(
                "invalid principal type {}",
                p.principal_classification
            ))
        })?;
        match class {
            Classification::Role => {
                let role = MspRole::decode(p.principal.clone()).map_err(|e| {
                    MspError::BadPrincipal(format!(
                        "could not unmarshal MSPRole from principal: {e}"
                    ))
                })?;
                self.check_msp(&role.msp_identifier, id)?;
                match MspRoleType::try_from(role.role) {
                    Ok(MspRoleType::Member) => self.validate(id),
                    Ok(MspRoleType::Admin) => {
                        if self.is_in_admins(id) {
                            return Ok(());
                        }
                        if !self.node_ous.enforced {
                            return Err(not_satisfied("This identity is not an admin"));
                        }
                        self.validate_for_role(id, NodeRole::Admin)
                    }
                    Ok(MspRoleType::Client) => self.validate_for_role(id, NodeRole::Client),
                    Ok(MspRoleType::Peer) => self.validate_for_role(id, NodeRole::Peer),
                    // Without NodeOUs the pre-1.3 rules know no ORDERER role.
                    Ok(MspRoleType::Orderer) if self.node_ous.enforced => {
                        self.validate_for_role(id, NodeRole::Orderer)
                    }
                    _ => Err(MspError::BadPrincipal(format!(
                        "invalid MSP role type {}",
                        role.role
                    ))),
                }
            }
            Classification::Identity => {
                let principal_id = self.deserialize_identity(&p.principal).map_err(|e| {
                    not_satisfied(format!(
                        "invalid identity principal, not a certificate: {e}"
                    ))
                })?;
                if principal_id.cert() == id.cert() {
                    self.validate(&principal_id)
                } else {
                    Err(not_satisfied("The identities do not match"))
                }
            }
            Classification::OrganizationUnit => {
                let ou = OrganizationUnit::decode(p.principal.clone()).map_err(|e| {
                    MspError::BadPrincipal(format!(
                        "could not unmarshal OrganizationUnit from principal: {e}"
                    ))
                })?;
                self.check_msp(&ou.msp_identifier, id)?;
                self.validate(id)?;
                let matched = id.organizational_units().iter().any(|(name, cid)| {
                    *name == ou.organizational_unit_identifier
                        && cid.as_slice() == ou.certifiers_identifier.as_ref()
                });
                if matched {
                    Ok(())
                } else {
                    Err(not_satisfied("The identities do not match"))
                }
            }
            Classification::Anonymity => {
                let a = MspIdentityAnonymity::decode(p.principal.clone()).map_err(|e| {
                    MspError::BadPrincipal(format!(
                        "could not unmarshal MSPIdentityAnonymity from principal: {e}"
                    ))
                })?;
                match MspIdentityAnonymityType::try_from(a.anonymity_type) {
                    Ok(MspIdentityAnonymityType::Nominal) => Ok(()),
                    Ok(MspIdentityAnonymityType::Anonymous) => Err(not_satisfied(
                        "Principal is anonymous, but X.509 MSP does not support anonymous identities",
                    )),
                    Err(_) => Err(MspError::BadPrincipal(format!(
                        "Unknown principal anonymity type: {}",
                        a.anonymity_type
                    ))),
                }
            }
            Classification::Combined => {
                // `collect` flattened every COMBINED principal already.
                Err(MspError::BadPrincipal(
                    "nested COMBINED principal left unexpanded".to_string(),
                ))
            }
        }
    }
}
