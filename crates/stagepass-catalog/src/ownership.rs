//! Ownership refs: the user and its groups, optionally with every ancestor group.

use std::collections::HashSet;

use stagepass_core::{EntityRef, UserEntity};

/// Backstage's default: the user's own ref, then each group of its `memberOf` relations,
/// normalised and without duplicates.
pub(crate) fn direct(user: &UserEntity) -> Vec<EntityRef> {
    let mut refs = vec![user.entity_ref.normalized()];
    for group in user.member_of.iter().filter(|r| r.is_kind("group")) {
        let group = group.normalized();
        if !refs.contains(&group) {
            refs.push(group);
        }
    }
    refs
}

/// Appends the ancestors of the groups in `refs`, breadth first: parents, then their parents.
/// Each group is visited once, so loops in the hierarchy end.
pub(crate) fn add_ancestors(
    refs: &mut Vec<EntityRef>,
    mut parents_of: impl FnMut(&EntityRef) -> Vec<EntityRef>,
) {
    let mut level: Vec<EntityRef> = refs
        .iter()
        .filter(|r| r.is_kind("group"))
        .cloned()
        .collect();
    let mut seen: HashSet<EntityRef> = refs.iter().cloned().collect();
    while !level.is_empty() {
        let mut next = Vec::new();
        for group in &level {
            for parent in parents_of(group) {
                let parent = parent.normalized();
                if parent.is_kind("group") && seen.insert(parent.clone()) {
                    refs.push(parent.clone());
                    next.push(parent);
                }
            }
        }
        level = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> EntityRef {
        s.parse().unwrap()
    }

    #[test]
    fn ancestors_are_added_once_even_in_loops() {
        let mut refs = vec![r("user:default/u"), r("group:default/a")];
        add_ancestors(&mut refs, |g| match g.name() {
            "a" => vec![r("group:default/b")],
            "b" => vec![r("group:default/c"), r("group:default/a")],
            "c" => vec![r("group:default/a"), r("user:default/odd")],
            _ => vec![],
        });
        let refs: Vec<String> = refs.iter().map(ToString::to_string).collect();
        assert_eq!(
            refs,
            [
                "user:default/u",
                "group:default/a",
                "group:default/b",
                "group:default/c"
            ]
        );
    }
}
