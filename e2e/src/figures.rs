//! The measured figures of a scenario, printed in one stable line so that a run's figures can
//! be collected with `grep '^E2E-FIGURES'`:
//! `E2E-FIGURES row=4 detect_ms=3120 recover_ms=410 cpu_pct=0.4 requests=3`.

use std::fmt::Write as _;
use std::time::Duration;

/// Figures of one scenario, printed on drop (also when the scenario fails half-way, with what
/// was measured so far).
#[derive(Debug)]
pub struct Figures {
    scenario: String,
    fields: Vec<(String, String)>,
    printed: bool,
}

impl Figures {
    /// Figures of `scenario` (a FAULTS.md row number, or a short name).
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.into(),
            fields: Vec::new(),
            printed: false,
        }
    }

    /// Records `key=value` (replacing an earlier value of `key`).
    pub fn set(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let value = value.to_string();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.fields.push((key.into(), value)),
        }
        self
    }

    /// Records a duration in milliseconds as `key`.
    pub fn ms(&mut self, key: &str, duration: Duration) -> &mut Self {
        self.set(key, duration.as_millis())
    }

    /// Records a percentage with one decimal as `key`.
    pub fn pct(&mut self, key: &str, pct: f64) -> &mut Self {
        self.set(key, format!("{pct:.1}"))
    }

    /// The line as printed.
    pub fn line(&self) -> String {
        let mut line = format!("E2E-FIGURES row={}", self.scenario);
        for (k, v) in &self.fields {
            let _ = write!(line, " {k}={v}");
        }
        line
    }

    /// Drops the figures without printing them (a scenario that measured nothing).
    pub fn discard(mut self) {
        self.printed = true;
    }

    /// Prints the line now (and not again on drop).
    pub fn print(&mut self) {
        println!("{}", self.line());
        self.printed = true;
    }
}

impl Drop for Figures {
    fn drop(&mut self) {
        if !self.printed {
            println!("{} incomplete=true", self.line());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_stable_and_replaces_repeated_keys() {
        let mut f = Figures::new("4");
        f.ms("detect_ms", Duration::from_millis(3120))
            .pct("cpu_pct", 0.44)
            .set("requests", 3);
        f.set("requests", 4);
        assert_eq!(
            f.line(),
            "E2E-FIGURES row=4 detect_ms=3120 cpu_pct=0.4 requests=4"
        );
        // Not printed: a unit test's line must not mix with the scenarios' figures.
        f.discard();
    }
}
