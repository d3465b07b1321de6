//! A follower's decisions (Fabric's `follower.Chain`): a node that is not a consenter of a
//! channel appends the blocks pulled from the channel's orderers, and decides when it is done
//! onboarding and when the channel's config makes it a consenter.
//!
//! - A node that joined with a config block numbered above its ledger's height is `onboarding`
//!   until its ledger reaches that block; the block pulled at that number must be the join block
//!   itself (the operator's trusted block vouches, through the hash chain, for everything before
//!   it).
//! - Every pulled block is appended synced (nothing else holds a durable copy of it); a config
//!   block becomes the follower's config.
//! - Once past onboarding, a config block listing this node (by its server TLS key) ends
//!   following: the runtime starts the channel's Raft chain. A node already listed when it
//!   starts following does so at once.
//!
//! The pulling itself (which orderer, checking each block's hash chain, data hash and
//! signatures) is the puller's; this engine sees the blocks that passed.

use ordo_ledger::block::{header_hash, is_config_block};
use ordo_proto::common::Block;

use crate::config::{ConfigReadError, ConfigView};
use crate::io::IoError;

/// The block a follower joined with: it must reach it, and what it pulls at that number must
/// be this very block.
#[derive(Debug, Clone)]
pub struct JoinBlock<C> {
    pub number: u64,
    pub hash: [u8; 32],
    pub config: C,
}

impl<C: ConfigView> JoinBlock<C> {
    pub fn of(block: &Block) -> Result<JoinBlock<C>, FollowError> {
        let header = block.header.as_ref().ok_or(FollowError::NoHeader)?;
        Ok(JoinBlock {
            number: header.number,
            hash: header_hash(header),
            config: C::from_block(block).map_err(|source| FollowError::Config {
                number: header.number,
                source,
            })?,
        })
    }
}

/// Why a follower stops.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("a pulled block has no header")]
    NoHeader,
    #[error("block {0} pulled from the channel's orderers is not the block this node joined with")]
    NotTheJoinBlock(u64),
    #[error("config block {number}: {source}")]
    Config {
        number: u64,
        #[source]
        source: ConfigReadError,
    },
    #[error("cannot append block {number}: {source}")]
    Ledger {
        number: u64,
        #[source]
        source: IoError,
    },
}

/// What the follower tells its runtime (metrics, the published config and state); nothing here
/// may fail or change what the engine does.
#[derive(Debug)]
pub enum FollowerEvent<'a, C> {
    /// A pulled block was appended.
    BlockWritten { number: u64 },
    /// A pulled config block is now the follower's config.
    ConfigApplied { number: u64, config: &'a C },
    /// The ledger reached the join block.
    Onboarded { number: u64 },
}

/// The world, as a follower sees it.
pub trait FollowerIo {
    type Config: ConfigView;
    /// Appends a pulled block; it is on stable storage when this returns.
    fn append(&mut self, block: &Block) -> Result<(), IoError>;
    /// The public key of this node's server TLS certificate, if it has one.
    fn self_key(&self) -> Option<Vec<u8>>;
    fn event(&mut self, e: FollowerEvent<'_, Self::Config>);
}

/// What to do after a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on pulling.
    Follow,
    /// The config lists this node and onboarding is done: stop following and start the chain.
    BecomeConsenter,
}

/// A follower of one channel.
#[derive(Debug)]
pub struct FollowerEngine<C> {
    /// The join block, while the ledger has not reached it.
    join: Option<(u64, [u8; 32])>,
    config: C,
    height: u64,
}

impl<C: ConfigView> FollowerEngine<C> {
    /// A follower whose ledger holds `height` blocks and whose config is `config` (the config
    /// at the ledger's tip, or the join block's when the ledger is empty). A join block the
    /// ledger already holds is not waited for.
    pub fn new(height: u64, config: C, join: Option<&JoinBlock<C>>) -> FollowerEngine<C> {
        FollowerEngine {
            join: join
                .filter(|j| height <= j.number)
                .map(|j| (j.number, j.hash)),
            config,
            height,
        }
    }

    /// Until the ledger reaches the join block.
    pub fn onboarding(&self) -> bool {
        self.join.is_some()
    }

    /// The config of the last config block appended (or the one it started with).
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The block number awaited while onboarding.
    pub fn join_number(&self) -> Option<u64> {
        self.join.map(|(n, _)| n)
    }

    /// Whether this node should run the chain now: past onboarding, with blocks, and listed
    /// by its config.
    pub fn consenter_now(&self, io: &impl FollowerIo<Config = C>) -> bool {
        self.join.is_none()
            && self.height > 0
            && io
                .self_key()
                .is_some_and(|k| self.config.position_of(&k).is_some())
    }

    /// Appends a block that passed the puller's checks and says whether to go on following.
    pub fn on_pulled(
        &mut self,
        io: &mut impl FollowerIo<Config = C>,
        block: &Block,
    ) -> Result<Next, FollowError> {
        let header = block.header.as_ref().ok_or(FollowError::NoHeader)?;
        let number = header.number;
        // The puller hands blocks in order from the ledger's tip.
        debug_assert_eq!(number, self.height, "a follower appends the next block");
        if let Some((join, hash)) = self.join
            && number == join
            && header_hash(header) != hash
        {
            return Err(FollowError::NotTheJoinBlock(join));
        }
        let config = is_config_block(block);
        // Read before the block is appended: a config the node cannot read must not be in its
        // ledger.
        let next = if config {
            Some(C::from_block(block).map_err(|source| FollowError::Config { number, source })?)
        } else {
            None
        };
        io.append(block)
            .map_err(|source| FollowError::Ledger { number, source })?;
        self.height = number + 1;
        io.event(FollowerEvent::BlockWritten { number });
        if let Some(next) = next {
            self.config = next;
            io.event(FollowerEvent::ConfigApplied {
                number,
                config: &self.config,
            });
        }
        if self.join.is_some_and(|(join, _)| number >= join) {
            self.join = None;
            io.event(FollowerEvent::Onboarded { number });
        }
        Ok(if config && self.consenter_now(io) {
            Next::BecomeConsenter
        } else {
            Next::Follow
        })
    }
}
