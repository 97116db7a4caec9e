//! Scopes (which documents a peer may receive) and write rules (which node may
//! author a change to which document), both pure functions of routing and registry.

use yichuang_shared::case::Routing;
use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::RejectReason;

use crate::store::NodeInfo;

/// The documents a node may hold and receive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The hub: every document.
    All,
    /// A center: the reference documents, its home cases (it answers for them to the
    /// applicant, wherever they are worked on) and the cases transferred to it.
    Center(String),
    /// A laptop: the reference documents and the cases assigned to this staff member.
    Staff(String),
}

impl Scope {
    pub fn of(info: &NodeInfo) -> Scope {
        match info.role {
            Role::Hub => Scope::All,
            Role::Center => Scope::Center(info.center.clone()),
            Role::Laptop => Scope::Staff(info.staff.clone()),
        }
    }

    /// Whether a document with this routing (`None` for reference documents or
    /// unreadable cases) is inside the scope.
    pub fn includes(&self, doc: &DocId, routing: Option<&Routing>) -> bool {
        if *self == Scope::All || doc.reference().is_some() {
            return true;
        }
        let Some(routing) = routing else {
            return false;
        };
        match self {
            Scope::All => true,
            Scope::Center(c) => {
                !c.is_empty() && (routing.home_center == *c || routing.current_center == *c)
            }
            Scope::Staff(s) => !s.is_empty() && routing.assigned_staff == *s,
        }
    }
}

/// Who wrote a change, as resolved from its actor id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Author {
    /// The pseudo-node that writes the byte-identical seed of every reference document.
    Seed,
    Node(NodeId, NodeInfo),
}

/// What a write rule needs to know about the document a change lands in.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A change with no dependencies: judged by the document it creates.
    Created(Option<&'a Routing>),
    /// A change to an existing document: judged by the routing at its dependencies.
    Existing(Option<&'a Routing>),
}

/// Decides whether `author` may write `doc`. Deterministic: every node that holds
/// the change's dependencies reaches the same answer, so copies never diverge.
pub fn check_write(
    author: &Author,
    doc: &DocId,
    target: Target<'_>,
) -> Result<(), (RejectReason, String)> {
    let (node, info) = match author {
        Author::Seed if doc.reference().is_some() => return Ok(()),
        Author::Seed => {
            return Err((
                RejectReason::NotPermitted,
                "the seed actor writes only reference documents".into(),
            ));
        }
        Author::Node(node, info) => (node, info),
    };
    if info.role == Role::Hub {
        return Ok(());
    }
    if doc.reference().is_some() {
        return Err((
            RejectReason::ReferenceDoc,
            format!("{} {node} may not write {doc}", info.role),
        ));
    }
    let center = info.center.as_str();
    let allowed = !center.is_empty()
        && match (info.role, target) {
            (Role::Center, Target::Created(Some(r))) => r.home_center == center,
            (Role::Center, Target::Existing(Some(r))) => {
                r.home_center == center || r.current_center == center
            }
            (Role::Laptop, Target::Created(Some(r))) => r.home_center == center,
            (Role::Laptop, Target::Existing(Some(r))) => {
                !info.staff.is_empty() && r.assigned_staff == info.staff
            }
            _ => false,
        };
    if allowed {
        return Ok(());
    }
    let what = match target {
        Target::Created(_) => "create",
        Target::Existing(_) => "write",
    };
    Err((
        RejectReason::NotPermitted,
        format!(
            "{} {node} ({}) may not {what} {doc}",
            info.role, info.center
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(home: &str, current: &str, staff: &str) -> Routing {
        Routing {
            home_center: home.into(),
            current_center: current.into(),
            assigned_staff: staff.into(),
        }
    }

    fn node(info: NodeInfo) -> Author {
        Author::Node(NodeId([1; 8]), info)
    }

    #[test]
    fn scopes_follow_routing() {
        let case = DocId::new_case([1; 16]);
        let catalog: DocId = "ref-catalog".parse().unwrap();
        let r = routing("A", "B", "s1");
        assert!(Scope::All.includes(&case, None));
        assert!(
            Scope::Center("B".into()).includes(&case, Some(&r)),
            "a case transferred to a center enters its scope"
        );
        assert!(
            Scope::Center("A".into()).includes(&case, Some(&r)),
            "the home center keeps its case"
        );
        assert!(
            !Scope::Center("B".into()).includes(&case, Some(&routing("A", "C", ""))),
            "transferred on, the case leaves the center it left"
        );
        assert!(!Scope::Center("C".into()).includes(&case, Some(&r)));
        assert!(Scope::Staff("s1".into()).includes(&case, Some(&r)));
        assert!(!Scope::Staff("s2".into()).includes(&case, Some(&r)));
        assert!(Scope::Staff("s2".into()).includes(&catalog, None));
        assert!(!Scope::Center("A".into()).includes(&case, None));
    }

    #[test]
    fn write_rules() {
        let case = DocId::new_case([1; 16]);
        let catalog: DocId = "ref-catalog".parse().unwrap();
        let r = routing("A", "B", "s1");
        fn ok(a: &Author, d: &DocId, t: Target<'_>) -> bool {
            check_write(a, d, t).is_ok()
        }
        let hub = node(NodeInfo::hub());
        let a = node(NodeInfo::center("A"));
        let b = node(NodeInfo::center("B"));
        let c = node(NodeInfo::center("C"));
        let s1 = node(NodeInfo::laptop("A", "s1"));
        let s2 = node(NodeInfo::laptop("A", "s2"));
        assert!(ok(&hub, &case, Target::Existing(Some(&r))));
        assert!(ok(&hub, &catalog, Target::Existing(None)));
        assert!(ok(&Author::Seed, &catalog, Target::Created(None)));
        assert!(!ok(&Author::Seed, &case, Target::Created(Some(&r))));
        assert!(
            ok(&a, &case, Target::Existing(Some(&r))),
            "the old home center keeps writing"
        );
        assert!(
            ok(&b, &case, Target::Existing(Some(&r))),
            "the current center writes"
        );
        assert!(!ok(&c, &case, Target::Existing(Some(&r))));
        assert!(!ok(&a, &catalog, Target::Existing(None)));
        assert!(ok(&a, &case, Target::Created(Some(&routing("A", "A", "")))));
        assert!(!ok(
            &b,
            &case,
            Target::Created(Some(&routing("A", "A", "")))
        ));
        assert!(ok(&s1, &case, Target::Existing(Some(&r))));
        assert!(!ok(&s2, &case, Target::Existing(Some(&r))));
        assert!(ok(
            &s2,
            &case,
            Target::Created(Some(&routing("A", "A", "")))
        ));
        assert!(!ok(
            &s2,
            &case,
            Target::Created(Some(&routing("B", "B", "")))
        ));
        assert!(!ok(&s1, &case, Target::Existing(None)));
        assert_eq!(
            check_write(&s1, &catalog, Target::Existing(None))
                .unwrap_err()
                .0,
            RejectReason::ReferenceDoc
        );
    }
}
