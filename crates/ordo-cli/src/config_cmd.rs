//! `ordo config ...`: decode/encode Fabric messages as configtxlator's JSON, compute config
//! updates, wrap and sign them, and build genesis blocks from configtx.yaml.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Subcommand;
use ordo_config::envelope::{add_config_signature, create_signed_envelope, parse};
use ordo_proto::Message;
use ordo_proto::common::{
    ChannelHeader, Config, ConfigUpdate, ConfigUpdateEnvelope, Envelope, Header, HeaderType,
    Payload,
};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a protobuf file as configtxlator's `proto_decode` JSON.
    Decode {
        /// Message type, e.g. common.Block, common.Envelope, common.Config, common.ConfigUpdate.
        #[arg(long = "type")]
        type_name: String,
        /// Input file (protobuf).
        file: PathBuf,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Encode configtxlator JSON back into protobuf (`proto_encode`).
    Encode {
        #[arg(long = "type")]
        type_name: String,
        /// Input file (JSON).
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The config update that turns one config into another (`compute_update`).
    ComputeUpdate {
        #[arg(long)]
        channel: String,
        /// The current config (common.Config, protobuf).
        #[arg(long)]
        original: PathBuf,
        /// The desired config (common.Config, protobuf).
        #[arg(long)]
        updated: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Wrap a common.ConfigUpdate in a CONFIG_UPDATE envelope, signed by an MSP folder's identity
    /// when one is given (otherwise unsigned, ready for `sign-update`).
    WrapUpdate {
        #[arg(long)]
        channel: String,
        /// The config update (common.ConfigUpdate, protobuf).
        file: PathBuf,
        #[arg(long, requires = "msp_id")]
        msp_dir: Option<PathBuf>,
        #[arg(long)]
        msp_id: Option<String>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Add a signature to a CONFIG_UPDATE envelope, as `peer channel signconfigtx` does: the
    /// signature goes into the config update and the envelope is re-signed by the same identity.
    SignUpdate {
        /// The CONFIG_UPDATE envelope (common.Envelope, protobuf).
        file: PathBuf,
        #[arg(long)]
        msp_dir: PathBuf,
        #[arg(long)]
        msp_id: String,
        /// Where to write the signed envelope (default: overwrite the input, as peer CLI does).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Build an application channel's genesis block from configtx.yaml (configtxgen
    /// `-outputBlock`).
    Genesis {
        /// Path to configtx.yaml.
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        channel: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn decode_file<M: Message + Default>(path: &Path, what: &str) -> Result<M> {
    M::decode(read(path)?.as_slice()).with_context(|| format!("{} is not a {what}", path.display()))
}

fn signer(dir: &Path, id: &str) -> Result<ordo_msp::SigningIdentity> {
    Ok(ordo_msp::local::load_signing_identity(dir, id)
        .with_context(|| format!("loading the MSP folder {}", dir.display()))?
        .signer)
}

pub fn run(cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Decode {
            type_name,
            file,
            output,
        } => {
            let json = ordo_protolator::decode(&type_name, &read(&file)?)
                .with_context(|| format!("decoding {} as {type_name}", file.display()))?;
            let text = ordo_protolator::to_json_string(&json);
            match output {
                Some(o) => write(&o, text.as_bytes()),
                None => Ok(std::io::stdout().write_all(text.as_bytes())?),
            }
        }
        ConfigCommand::Encode {
            type_name,
            file,
            output,
        } => {
            let json: serde_json::Value = serde_json::from_slice(&read(&file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let bytes = ordo_protolator::encode(&type_name, &json)
                .with_context(|| format!("encoding {} as {type_name}", file.display()))?;
            write(&output, &bytes)
        }
        ConfigCommand::ComputeUpdate {
            channel,
            original,
            updated,
            output,
        } => {
            let a: Config = decode_file(&original, "common.Config")?;
            let b: Config = decode_file(&updated, "common.Config")?;
            let update = ordo_protolator::compute_update(&channel, &a, &b)?;
            write(
                &output,
                &ordo_protolator::marshal("common.ConfigUpdate", &update)?,
            )
        }
        ConfigCommand::WrapUpdate {
            channel,
            file,
            msp_dir,
            msp_id,
            output,
        } => {
            // The update's bytes are carried verbatim: signatures are over exactly these bytes.
            let raw = Bytes::from(read(&file)?);
            let update = ConfigUpdate::decode(raw.clone())
                .with_context(|| format!("{} is not a common.ConfigUpdate", file.display()))?;
            if update.channel_id != channel {
                bail!(
                    "the update is for channel {:?}, not {channel:?}",
                    update.channel_id
                );
            }
            let mut cue = ConfigUpdateEnvelope {
                config_update: raw,
                signatures: vec![],
            };
            let env = match (msp_dir, msp_id) {
                (Some(dir), Some(id)) => {
                    let s = signer(&dir, &id)?;
                    add_config_signature(&mut cue, &s)?;
                    create_signed_envelope(
                        HeaderType::ConfigUpdate,
                        &channel,
                        &s,
                        cue.encode_to_vec().into(),
                    )?
                }
                _ => {
                    // What configtxlator users build by hand: a payload with only a channel header.
                    let ch = ChannelHeader {
                        r#type: HeaderType::ConfigUpdate as i32,
                        channel_id: channel.clone(),
                        ..Default::default()
                    };
                    let payload = Payload {
                        header: Some(Header {
                            channel_header: ch.encode_to_vec().into(),
                            signature_header: Bytes::new(),
                        }),
                        data: cue.encode_to_vec().into(),
                    };
                    Envelope {
                        payload: payload.encode_to_vec().into(),
                        signature: Bytes::new(),
                    }
                }
            };
            write(&output, &env.encode_to_vec())
        }
        ConfigCommand::SignUpdate {
            file,
            msp_dir,
            msp_id,
            output,
        } => {
            let env: Envelope = decode_file(&file, "common.Envelope")?;
            let parsed = parse(&env).context("bad header")?;
            if parsed.channel_header.r#type != HeaderType::ConfigUpdate as i32 {
                bail!("bad type: the envelope is not a CONFIG_UPDATE");
            }
            let channel = parsed.channel_header.channel_id;
            if channel.is_empty() {
                bail!("empty channel id");
            }
            let mut cue = ConfigUpdateEnvelope::decode(parsed.payload.data)
                .context("the envelope does not carry a ConfigUpdateEnvelope")?;
            let s = signer(&msp_dir, &msp_id)?;
            add_config_signature(&mut cue, &s)?;
            let signed = create_signed_envelope(
                HeaderType::ConfigUpdate,
                &channel,
                &s,
                cue.encode_to_vec().into(),
            )?;
            write(output.as_deref().unwrap_or(&file), &signed.encode_to_vec())
        }
        ConfigCommand::Genesis {
            config,
            profile,
            channel,
            output,
        } => {
            ordo_config::configtx::validate_channel_id(&channel)
                .map_err(|e| anyhow::anyhow!("bad channel ID: {e}"))?;
            let block = ordo_config::genesis::genesis_block(&config, &profile, &channel)?;
            write(&output, &block.encode_to_vec())
        }
    }
}
