//! A partitioned stream's settings: one [`GroupSettings`] per partition.

use super::{GroupSettings, Invalid};
use crate::keys::{MAX_PARTITIONS, partition_base_problem, partition_name};

impl GroupSettings {
    /// The settings of each stream these consumers read: itself when the
    /// stream is not partitioned; else one per partition `p`, on stream
    /// `STREAM:{p}` with dead letters in `DEAD_LETTER:{p}` (same slot), read
    /// by one consumer: partition `p` by the `p mod C`-th of the C names, so
    /// each consumer reads one partition or several.
    pub fn per_partition(&self) -> Vec<GroupSettings> {
        let Some(n) = self.partitions else { return vec![self.clone()] };
        (0..n)
            .map(|p| GroupSettings {
                stream: partition_name(&self.stream, p),
                dead_letter: partition_name(&self.dead_letter, p),
                consumers: vec![self.consumers[p as usize % self.consumers.len()].clone()],
                partitions: None,
                ..self.clone()
            })
            .collect()
    }

    pub(super) fn check_partitions(&self) -> Result<(), Invalid> {
        let Some(n) = self.partitions else { return Ok(()) };
        if !(1..=MAX_PARTITIONS).contains(&n) {
            return Err(Invalid::new(
                "partitions",
                format!("{n} is outside 1..={MAX_PARTITIONS} (streams the group is split over)"),
            ));
        }
        for (key, name) in [("stream", &self.stream), ("dead_letter", &self.dead_letter)] {
            if let Some(problem) = partition_base_problem(name) {
                return Err(Invalid::new("partitions", format!("the {key} {problem}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_take_one_consumer_each_round_robin() {
        let names = vec!["a".to_string(), "b".to_string()];
        let settings = GroupSettings { partitions: Some(3), ..GroupSettings::new("orders", "g", names) };
        settings.validate().unwrap();
        let parts = settings.per_partition();
        let shown: Vec<_> =
            parts.iter().map(|p| (p.stream.as_str(), p.dead_letter.as_str(), p.consumers[0].as_str())).collect();
        assert_eq!(
            shown,
            [
                ("orders:{0}", "orders:dlq:{0}", "a"),
                ("orders:{1}", "orders:dlq:{1}", "b"),
                ("orders:{2}", "orders:dlq:{2}", "a")
            ]
        );
        assert_eq!(GroupSettings::new("s", "g", vec!["a".into()]).per_partition().len(), 1);
    }

    #[test]
    fn a_tagged_base_or_zero_partitions_is_refused() {
        let tagged = GroupSettings { partitions: Some(2), ..GroupSettings::new("{orders}", "g", vec!["a".into()]) };
        assert!(tagged.validate().unwrap_err().problem.contains("hash tag"));
        let zero = GroupSettings { partitions: Some(0), ..GroupSettings::new("orders", "g", vec!["a".into()]) };
        assert_eq!(zero.validate().unwrap_err().key, "partitions");
    }
}
