//! Properties of the origin globs (`auth.experimentalExtraAllowedOrigins`): arbitrary
//! patterns and origins never panic or hang, and matching agrees with a reference matcher. The
//! other parsers of client and identity-provider input (the `state` parameter, `Cookie`
//! headers and chunk assembly, the sealed cookies) are private; their properties are tested
//! next to them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use stagepass_axum::glob_match;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn globs_never_panic(p in "\\PC{0,60}", t in "\\PC{0,60}", q in "[*?\\[\\]{},\\\\a/!^-]{0,40}") {
        let _ = glob_match(&p, &t);
        let _ = glob_match(&q, &t);
        let _ = glob_match(&q, &q);
    }

    #[test]
    fn globs_match_like_a_reference_matcher(p in "[ab/*?]{0,10}", t in "[ab/]{0,10}") {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = t.chars().collect();
        let expected = reference_match(&p, &t);
        prop_assert_eq!(
            glob_match(&p.iter().collect::<String>(), &t.iter().collect::<String>()),
            expected
        );
    }

    #[test]
    fn a_star_never_crosses_a_slash(x in "\\PC{0,12}", m in "\\PC{0,12}", y in "\\PC{0,12}") {
        let escape = |s: &str| s.chars().flat_map(|c| ['\\', c]).collect::<String>();
        let pattern = format!("{}*{}", escape(&x), escape(&y));
        prop_assert_eq!(glob_match(&pattern, &format!("{x}{m}{y}")), !m.contains('/'));
    }
}

/// Minimatch without classes or braces, by exhaustive search: `*` takes any run without `/`,
/// `?` one character other than `/`.
fn reference_match(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => {
            let reach = t.iter().position(|&c| c == '/').unwrap_or(t.len());
            (0..=reach).any(|k| reference_match(rest, &t[k..]))
        }
        Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && reference_match(rest, &t[1..]),
        Some((&c, rest)) => t.first() == Some(&c) && reference_match(rest, &t[1..]),
    }
}

#[test]
fn hostile_globs_finish() {
    // many stars against a text that almost matches: no exponential backtracking
    let stars = format!("{}b", "*a".repeat(64));
    assert!(!glob_match(&stars, &"a".repeat(4096)));
    // many brace groups: the expansion stops at its bound instead of visiting 2^40 patterns
    let braces = "{a,b}".repeat(40);
    assert!(glob_match(&braces, &"a".repeat(40)));
    assert!(glob_match(&braces, &format!("{}bbb", "a".repeat(37))));
    let _ = glob_match(&braces, &"b".repeat(40));
    // deeply nested braces
    let nested = format!("{}x{}", "{a,".repeat(200), "}".repeat(200));
    let _ = glob_match(&nested, "ax");
}
