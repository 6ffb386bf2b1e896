//! The built-in correctness metrics of a dataset task (`task.reward = "em" | "f1" |
//! "contains"`), with SQuAD's answer normalisation: lower case, punctuation and the articles
//! `a`, `an`, `the` removed, whitespace collapsed. A prediction is scored against each accepted
//! answer and keeps the best score.
use serde::{Deserialize, Serialize};

/// A built-in metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Exact match of the normalised strings: 1 or 0.
    Em,
    /// Token-level F1 of the normalised strings, in [0, 1].
    F1,
    /// 1 when a normalised answer occurs, as whole words, in the normalised prediction.
    Contains,
}

impl Metric {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Em => "em",
            Self::F1 => "f1",
            Self::Contains => "contains",
        }
    }

    /// The best score of `prediction` against any of `answers` (0 when there are none).
    pub fn score<'a>(self, prediction: &str, answers: impl IntoIterator<Item = &'a str>) -> f32 {
        let p = normalise(prediction);
        answers
            .into_iter()
            .map(|a| {
                let a = normalise(a);
                match self {
                    Self::Em => f32::from(u8::from(p == a)),
                    Self::F1 => f1(&p, &a),
                    Self::Contains => f32::from(u8::from(
                        !a.is_empty() && format!(" {p} ").contains(&format!(" {a} ")),
                    )),
                }
            })
            .fold(0.0, f32::max)
    }
}

/// SQuAD's normalisation (`normalize_answer` of its evaluation script).
pub fn normalise(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Token F1 of two normalised strings (SQuAD's: 1 when both are empty, 0 when one is).
fn f1(prediction: &str, gold: &str) -> f32 {
    let p: Vec<&str> = prediction.split_whitespace().collect();
    let g: Vec<&str> = gold.split_whitespace().collect();
    if p.is_empty() || g.is_empty() {
        return f32::from(u8::from(p == g));
    }
    let mut left = g.clone();
    let mut same = 0usize;
    for w in &p {
        if let Some(i) = left.iter().position(|x| x == w) {
            left.swap_remove(i);
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f32 / p.len() as f32;
    let recall = same as f32 / g.len() as f32;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squad_normalisation() {
        assert_eq!(normalise("The  Eiffel-Tower!"), "eiffeltower");
        assert_eq!(normalise(" An apple , a day ."), "apple day");
    }

    #[test]
    fn each_metric_takes_the_best_answer() {
        let answers = ["Paris", "the City of Light"];
        assert_eq!(Metric::Em.score("paris .", answers), 1.0);
        assert_eq!(Metric::Em.score("city of light", answers), 1.0);
        assert_eq!(Metric::Em.score("Paris France", answers), 0.0);
        assert_eq!(Metric::Contains.score("it is Paris , France", answers), 1.0);
        assert_eq!(Metric::Contains.score("Parisian", answers), 0.0);
        let f = Metric::F1.score("Paris France", answers);
        assert!((f - 2.0 / 3.0).abs() < 1e-6, "{f}");
        assert_eq!(Metric::F1.score("light city of", answers), 1.0);
        assert_eq!(Metric::F1.score("nothing", answers), 0.0);
        assert_eq!(Metric::Em.score("x", []), 0.0);
    }
}
