//! Whether something is reached: the three-valued answer every reachability question of
//! the model gives (the verdicts refuse only on a certain one).

/// Whether something is reached (cluster DNS, all traffic): for certain, under a condition,
/// or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Certainly, under the configured semantics.
    Yes,
    /// Only if this condition holds, which the guard cannot see (pod IPs, the CNI).
    Maybe(String),
    /// Certainly not.
    No,
}

impl Reach {
    /// The better of two answers: yes beats maybe beats no.
    pub(crate) fn or(self, other: impl FnOnce() -> Reach) -> Reach {
        match self {
            Reach::Yes => Reach::Yes,
            Reach::Maybe(c) => match other() {
                Reach::Yes => Reach::Yes,
                _ => Reach::Maybe(c),
            },
            Reach::No => other(),
        }
    }
}
