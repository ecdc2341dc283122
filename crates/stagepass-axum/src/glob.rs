//! Glob patterns for allowed origins, with minimatch's `{nocase: true, noglobstar: true}`
//! semantics.

/// Whether `text` matches the glob `pattern`, ignoring ASCII case.
///
/// `*` matches any run of characters other than `/`, `?` one character other than `/`,
/// `[...]` a character class (ranges, `!` or `^` to negate), `{a,b}` one of the alternatives
/// (nesting allowed), and `\` escapes the next character. A malformed class or brace is taken
/// literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    expand_braces(pattern).iter().any(|p| {
        match_here(
            &p.chars().collect::<Vec<_>>(),
            &text.chars().collect::<Vec<_>>(),
        )
    })
}

/// At most this many patterns come out of one pattern's braces.
const MAX_EXPANSIONS: usize = 256;
/// At most this many nested or successive brace groups are expanded on one path; groups
/// beyond are taken literally. This bounds the recursion and the copies of the pattern it
/// holds; no origin pattern needs that many groups.
const MAX_BRACE_DEPTH: usize = 64;

/// Expands `{a,b}` alternatives into separate patterns. Bounded in output and in work, so a
/// hostile pattern stays cheap: the expansion stops as soon as `MAX_EXPANSIONS` patterns are
/// out, instead of expanding every alternative first.
fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(pattern, 0, &mut out);
    out
}

fn expand_into(pattern: &str, depth: usize, out: &mut Vec<String>) {
    if out.len() >= MAX_EXPANSIONS {
        return;
    }
    let chars: Vec<char> = pattern.chars().collect();
    let group = if depth < MAX_BRACE_DEPTH {
        first_brace_group(&chars)
    } else {
        None
    };
    let Some((start, splits, end)) = group else {
        out.push(pattern.to_owned());
        return;
    };
    let prefix: String = chars[..start].iter().collect();
    let suffix: String = chars[end + 1..].iter().collect();
    let mut bounds = vec![start];
    bounds.extend(&splits);
    bounds.push(end);
    for w in bounds.windows(2) {
        let alt: String = chars[w[0] + 1..w[1]].iter().collect();
        expand_into(&format!("{prefix}{alt}{suffix}"), depth + 1, out);
        if out.len() >= MAX_EXPANSIONS {
            return;
        }
    }
}

/// The first top-level `{…,…}` group: its opening index, the indices of its top-level
/// commas, and its closing index. `{a}` without a comma is literal, as in minimatch.
fn first_brace_group(chars: &[char]) -> Option<(usize, Vec<usize>, usize)> {
    let mut depth = 0usize;
    let mut open = None;
    let mut splits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                    splits.clear();
                }
                depth += 1;
            }
            ',' if depth == 1 => splits.push(i),
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0
                    && let Some(start) = open.take()
                    && !splits.is_empty()
                {
                    return Some((start, splits, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn match_here(p: &[char], t: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (linear in practice, no recursion).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' if t[ti] != '/' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = match_class(&p[pi..], t[ti]) {
                        if matched {
                            pi += len;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && eq(p[pi + 1], t[ti]) => {
                    pi += 2;
                    ti += 1;
                    continue;
                }
                '\\' if pi + 1 < p.len() => {}
                c if c != '?' && eq(c, t[ti]) => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) if t[st] != '/' => {
                star = Some((sp, st + 1));
                pi = sp + 1;
                ti = st + 1;
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches one character against the class at the start of `p`; returns whether it matched
/// and the class's length, or `None` when the class is not closed.
fn match_class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate && c != '/', i + 1));
        }
        first = false;
        let lo = p[i];
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            let hi = p[i + 2];
            let lc = c.to_ascii_lowercase();
            if (lo.to_ascii_lowercase()..=hi.to_ascii_lowercase()).contains(&lc)
                || (lo..=hi).contains(&c)
            {
                matched = true;
            }
            i += 3;
        } else {
            if eq(lo, c) {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

fn eq(a: char, b: char) -> bool {
    a.eq_ignore_ascii_case(&b)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn matches_like_minimatch() {
        assert!(glob_match("https://*.example.com", "https://a.example.com"));
        assert!(glob_match("https://*.example.com", "https://A.Example.COM"));
        assert!(!glob_match("https://*.example.com", "http://a.example.com"));
        assert!(!glob_match(
            "https://*.example.com",
            "https://a/b.example.com"
        ));
        assert!(!glob_match("https://*.example.com", "https://example.com"));
        assert!(glob_match("http://localhost:30?0", "http://localhost:3000"));
        assert!(glob_match(
            "http://localhost:[3-4]000",
            "http://localhost:4000"
        ));
        assert!(!glob_match(
            "http://localhost:[!3]000",
            "http://localhost:3000"
        ));
        assert!(glob_match(
            "https://{a,b}.example.com",
            "https://b.example.com"
        ));
        assert!(!glob_match(
            "https://{a,b}.example.com",
            "https://c.example.com"
        ));
        assert!(glob_match("https://x.com", "https://x.com"));
        assert!(!glob_match("https://x.com", "https://x.com.evil"));
        assert!(glob_match("https://\\*.com", "https://*.com"));
    }

    proptest! {
        #[test]
        fn never_panics(p in "\\PC{0,40}", t in "\\PC{0,40}") {
            let _ = glob_match(&p, &t);
        }
    }
}
