//! The benchmark table: rows with a value, an optional same-run baseline, ratio and goal.

use std::time::Duration;

#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

pub struct Row {
    name: String,
    value: String,
    baseline: String,
    ratio: String,
    goal: String,
    note: String,
}

impl Row {
    pub fn new(name: &str, value: String) -> Row {
        Row {
            name: name.into(),
            value,
            baseline: "—".into(),
            ratio: "—".into(),
            goal: "—".into(),
            note: String::new(),
        }
    }
    pub fn baseline(mut self, b: impl Into<String>) -> Row {
        self.baseline = b.into();
        self
    }
    pub fn ratio(mut self, r: f64) -> Row {
        self.ratio = format!("{r:.2}×");
        self
    }
    pub fn goal(mut self, g: impl Into<String>) -> Row {
        self.goal = g.into();
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
}

impl Table {
    pub fn push(&mut self, r: Row) {
        eprintln!("measured: {} = {}", r.name, r.value);
        self.rows.push(r);
    }

    pub fn print(&self) {
        println!("| benchmark | value | baseline (same run) | ratio | goal | note |");
        println!("|---|---|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r.name, r.value, r.baseline, r.ratio, r.goal, r.note
            );
        }
    }
}

pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The `p`th percentile (nearest rank).
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    let i = ((samples.len() * p).div_ceil(100))
        .saturating_sub(1)
        .min(samples.len() - 1);
    samples[i]
}
