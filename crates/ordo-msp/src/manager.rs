use std::collections::BTreeMap;
use std::sync::Arc;

use ordo_proto::msp::SerializedIdentity;
use prost::Message;

use crate::{Identity, Msp, MspError};

/// The MSPs of one channel (Fabric's `MSPManager`): routes each serialized identity to the MSP it
/// names.
#[derive(Debug, Default, Clone)]
pub struct MspManager {
    msps: BTreeMap<String, Arc<Msp>>,
}

impl MspManager {
    pub fn new(msps: impl IntoIterator<Item = Arc<Msp>>) -> Self {
        MspManager {
            msps: msps
                .into_iter()
                .map(|m| (m.name().to_string(), m))
                .collect(),
        }
    }

    pub fn get(&self, msp_id: &str) -> Option<&Arc<Msp>> {
        self.msps.get(msp_id)
    }

    pub fn msps(&self) -> impl Iterator<Item = &Arc<Msp>> {
        self.msps.values()
    }

    /// Deserializes a marshalled `SerializedIdentity` with the MSP it names.
    pub fn deserialize_identity(&self, serialized: &[u8]) -> Result<Identity, MspError> {
        let sid = SerializedIdentity::decode(serialized)
            .map_err(|e| MspError::BadSerializedIdentity(e.to_string()))?;
        let msp = self
            .msps
            .get(&sid.mspid)
            .ok_or_else(|| MspError::UnknownMsp(sid.mspid.clone()))?;
        msp.identity_from_pem(&sid.id_bytes)
    }

    /// The MSP an identity came from.
    pub fn msp_of(&self, id: &Identity) -> Result<&Arc<Msp>, MspError> {
        self.msps
            .get(id.msp_id())
            .ok_or_else(|| MspError::UnknownMsp(id.msp_id().to_string()))
    }
}
