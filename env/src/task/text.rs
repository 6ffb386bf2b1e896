//! Canonical text: words and punctuation marks separated by single spaces.
//!
//! The world writes its text this way, and the word-level tokenizer, the protocol's parsers
//! and the tools' word bounds rely on it; a dataset's text is brought to the same form when it
//! is read, so `"Paris."` becomes `"Paris ."` rather than a word of its own. Canonical text
//! is unchanged by [`canonical`], which is what lets the exported world read back as itself.

/// `text` with each punctuation mark a word of its own and whitespace runs made single spaces.
pub fn canonical(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut space = true;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        let word_char = c.is_alphanumeric();
        if !out.is_empty() && (space || !word_char || !last_is_word(&out)) {
            out.push(' ');
        }
        out.push(c);
        space = false;
    }
    out
}

fn last_is_word(s: &str) -> bool {
    s.chars().next_back().is_some_and(char::is_alphanumeric)
}

/// Splits canonical text into sentences: after each `.`, `?` or `!` word.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for w in text.split(' ').filter(|w| !w.is_empty()) {
        current.push(w);
        if matches!(w, "." | "?" | "!") {
            out.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_becomes_words_and_canonical_text_is_kept() {
        assert_eq!(canonical("  Paris,  France.\n"), "Paris , France .");
        assert_eq!(canonical("don't (1990-1995)"), "don ' t ( 1990 - 1995 )");
        assert_eq!(canonical("Où est Zoë?"), "Où est Zoë ?");
        let world = "The birthplace of Alma Voss is Tarsk . Where was Alma Voss born ?";
        assert_eq!(canonical(world), world);
        assert_eq!(canonical(""), "");
    }

    #[test]
    fn sentences_end_at_stops() {
        assert_eq!(
            sentences("A b . C d ? e"),
            ["A b .", "C d ?", "e"].map(String::from)
        );
        assert!(sentences("").is_empty());
    }
}
