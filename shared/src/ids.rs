//! Identifiers that cross every boundary: nodes, roles, documents, actors and case numbers.

use std::fmt;
use std::str::FromStr;

use automerge::ActorId;
use serde::{Deserialize, Serialize};

/// Bytes of a node id. Eight random bytes make a collision among a district's
/// few hundred nodes vanishingly unlikely while keeping every actor id short.
pub const NODE_ID_LEN: usize = 8;

/// Random bytes appended to the node id to form one process's actor id, so two
/// processes of one node (the CLI and `serve`) never share an actor.
pub const ACTOR_NONCE_LEN: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("node id must be {NODE_ID_LEN} bytes as hex digits, got {0:?}")]
    NodeId(String),
    #[error("document id {0:?} is not a case id (c + 32 hex digits) nor a reference document")]
    DocId(String),
    #[error("unknown role {0:?}: expected hub, center or laptop")]
    Role(String),
}

/// The identity of one enrolled node; the prefix of every actor id it writes with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; NODE_ID_LEN]);

impl NodeId {
    /// The pseudo-node that authors the seeded reference documents. Every node
    /// produces the seed changes byte-identically, so they deduplicate by hash.
    pub const SEED: NodeId = NodeId([0; NODE_ID_LEN]);

    pub fn actor(self, nonce: [u8; ACTOR_NONCE_LEN]) -> ActorId {
        let mut bytes = self.0.to_vec();
        bytes.extend_from_slice(&nonce);
        ActorId::from(bytes)
    }

    /// The node that wrote with `actor`, if the actor follows the node-bound layout.
    pub fn of_actor(actor: &ActorId) -> Option<NodeId> {
        let bytes = actor.to_bytes();
        if bytes.len() != NODE_ID_LEN + ACTOR_NONCE_LEN {
            return None;
        }
        let mut id = [0u8; NODE_ID_LEN];
        id.copy_from_slice(&bytes[..NODE_ID_LEN]);
        Some(NodeId(id))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex(s).ok_or_else(|| IdError::NodeId(s.to_owned()))?;
        let id: [u8; NODE_ID_LEN] = bytes
            .try_into()
            .map_err(|_| IdError::NodeId(s.to_owned()))?;
        Ok(NodeId(id))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a node is for; decides its scope and what it may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Hub,
    Center,
    Laptop,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hub => "hub",
            Role::Center => "center",
            Role::Laptop => "laptop",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hub" => Ok(Role::Hub),
            "center" => Ok(Role::Center),
            "laptop" => Ok(Role::Laptop),
            _ => Err(IdError::Role(s.to_owned())),
        }
    }
}

/// The reference documents every node holds; only the hub writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefDoc {
    Catalog,
    Calendar,
    Nodes,
}

impl RefDoc {
    pub const ALL: [RefDoc; 3] = [RefDoc::Catalog, RefDoc::Calendar, RefDoc::Nodes];

    pub fn doc_id(self) -> DocId {
        DocId(
            match self {
                RefDoc::Catalog => "ref-catalog",
                RefDoc::Calendar => "ref-calendar",
                RefDoc::Nodes => "ref-nodes",
            }
            .to_owned(),
        )
    }
}

/// A document's id: `c` and 32 hex digits for a case, `ref-…` for reference documents.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

impl DocId {
    pub fn new_case(random: [u8; 16]) -> DocId {
        DocId(format!("c{}", encode_hex(&random)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn reference(&self) -> Option<RefDoc> {
        RefDoc::ALL.into_iter().find(|r| r.doc_id() == *self)
    }

    pub fn is_case(&self) -> bool {
        self.0.starts_with('c')
    }
}

impl FromStr for DocId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let is_case = s.len() == 33
            && s.starts_with('c')
            && s[1..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let id = DocId(s.to_owned());
        if is_case || id.reference().is_some() {
            Ok(id)
        } else {
            Err(IdError::DocId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for DocId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocId> for String {
    fn from(d: DocId) -> String {
        d.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({})", self.0)
    }
}

/// Formats a case number `{district}-{center}-{yyyymmdd}-{seq}`. Hubs and
/// laptops share a center's codes, so their sequence carries a node tag
/// (`H0001`, `L3-0001`) that keeps numbers unique without coordination.
pub fn case_number(district: &str, center: &str, yyyymmdd: &str, tag: &str, seq: u64) -> String {
    format!("{district}-{center}-{yyyymmdd}-{tag}{seq:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_through_text_and_actor() {
        let id = NodeId([1, 2, 3, 4, 5, 6, 7, 0xff]);
        assert_eq!(id.to_string(), "01020304050607ff");
        assert_eq!("01020304050607ff".parse::<NodeId>(), Ok(id));
        assert_eq!(NodeId::of_actor(&id.actor([9, 9, 9, 9])), Some(id));
        assert_eq!(NodeId::of_actor(&ActorId::from(vec![1u8, 2])), None);
        assert!("0102".parse::<NodeId>().is_err());
        assert!("zz020304050607ff".parse::<NodeId>().is_err());
    }

    #[test]
    fn doc_ids_are_checked() {
        let c = DocId::new_case([0xab; 16]);
        assert!(c.is_case());
        assert_eq!(c.as_str().parse::<DocId>(), Ok(c));
        assert_eq!(
            "ref-catalog".parse::<DocId>().unwrap().reference(),
            Some(RefDoc::Catalog)
        );
        for bad in [
            "",
            "c12",
            "x0123456789abcdef0123456789abcdef",
            "ref-other",
            "cABCDEF0123456789abcdef0123456789",
        ] {
            assert!(bad.parse::<DocId>().is_err(), "{bad}");
        }
    }
}
