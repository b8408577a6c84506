//! The effects a plugin records during one call (the `effects` import),
//! per entry of the call, within the caps per entry. The instance keeps
//! those of entries handled ok and drops the rest (`instance.rs`).

use crate::effects::{Effect, MAX_EFFECT_BYTES_PER_CALL, MAX_EFFECT_BYTES_PER_ENTRY, MAX_EFFECTS_PER_ENTRY};

/// Why an effect was not recorded.
pub(crate) enum Refused {
    /// A mistake the plugin sees as an error (unknown entry id).
    Error(String),
    /// Over the caps: the call traps, so the entry is a fault.
    Trap(String),
}

/// Effects of the call in progress, by entry. Reused from call to call, so a
/// plugin that records nothing costs one id copy per entry.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Ids of the call's entries; only the first `live` are current.
    ids: Vec<String>,
    live: usize,
    /// Per entry: its effects and their bytes.
    effects: Vec<(Vec<Effect>, usize)>,
    /// Where the last id was found: plugins record in entry order.
    hint: usize,
    /// Whether anything was recorded in this call.
    used: bool,
    /// Bytes recorded in this call, all entries together.
    call_bytes: usize,
}

impl Recorder {
    /// Starts a call for the entries `ids`, dropping anything left over.
    pub(crate) fn begin<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        if self.used {
            self.discard();
        }
        self.live = 0;
        for id in ids {
            match self.ids.get_mut(self.live) {
                Some(slot) => {
                    slot.clear();
                    slot.push_str(id);
                }
                None => self.ids.push(id.to_string()),
            }
            self.live += 1;
        }
        self.hint = 0;
    }

    /// Whether anything was recorded in this call.
    #[inline]
    pub(crate) fn used(&self) -> bool {
        self.used
    }

    /// Records `effect` for entry `id`.
    pub(crate) fn record(&mut self, id: &str, effect: Effect) -> Result<(), Refused> {
        let index = self.index(id).ok_or_else(|| {
            let known = match self.live {
                0 => "no entry is being handled now (start-up code cannot record effects)".to_string(),
                1 => format!("the entry being handled is {:?}", self.ids[0]),
                n => format!("this call handles {n} entries, {:?} to {:?}", self.ids[0], self.ids[n.max(1) - 1]),
            };
            Refused::Error(format!(
                "entry {id:?} is not one this call handles ({known}); effects name their entry's id"
            ))
        })?;
        if self.effects.len() < self.live {
            self.effects.resize_with(self.live, Default::default);
        }
        let (effects, bytes) = &mut self.effects[index];
        let more = effect.bytes();
        if effects.len() >= MAX_EFFECTS_PER_ENTRY || *bytes + more > MAX_EFFECT_BYTES_PER_ENTRY {
            return Err(Refused::Trap(format!(
                "entry {id} recorded more effects than allowed per entry ({MAX_EFFECTS_PER_ENTRY} effects, \
                 {MAX_EFFECT_BYTES_PER_ENTRY} bytes): none of its effects will be applied"
            )));
        }
        if self.call_bytes + more > MAX_EFFECT_BYTES_PER_CALL {
            return Err(Refused::Trap(format!(
                "this call recorded more effects than allowed per call ({MAX_EFFECT_BYTES_PER_CALL} bytes): none \
                 will be applied"
            )));
        }
        self.call_bytes += more;
        *bytes += more;
        effects.push(effect);
        self.used = true;
        Ok(())
    }

    /// Takes the effects of the call's entry number `index`.
    pub(crate) fn take(&mut self, index: usize) -> Vec<Effect> {
        match self.effects.get_mut(index) {
            Some((effects, bytes)) => {
                *bytes = 0;
                std::mem::take(effects)
            }
            None => Vec::new(),
        }
    }

    /// Drops every effect of the call.
    pub(crate) fn discard(&mut self) {
        for (effects, bytes) in &mut self.effects {
            effects.clear();
            *bytes = 0;
        }
        self.used = false;
        self.call_bytes = 0;
    }

    fn index(&mut self, id: &str) -> Option<usize> {
        let ids = &self.ids[..self.live];
        for guess in [self.hint, self.hint + 1] {
            if ids.get(guess).is_some_and(|known| known == id) {
                self.hint = guess;
                return Some(guess);
            }
        }
        let found = ids.iter().position(|known| known == id)?;
        self.hint = found;
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr() -> Effect {
        Effect::Incr { key: "k".into(), field: None, by: 1 }
    }

    #[test]
    fn effects_go_to_their_entry_and_unknown_ids_are_errors() {
        let mut r = Recorder::default();
        r.begin(["1-0", "2-0", "3-0"].into_iter());
        assert!(r.record("3-0", incr()).is_ok());
        assert!(r.record("1-0", incr()).is_ok());
        assert!(matches!(r.record("9-0", incr()), Err(Refused::Error(e)) if e.contains("\"1-0\" to \"3-0\"")));
        assert_eq!((r.take(0).len(), r.take(1).len(), r.take(2).len()), (1, 0, 1));
        r.begin(["4-0"].into_iter());
        assert!(!r.used());
        assert!(matches!(r.record("1-0", incr()), Err(Refused::Error(_))), "the last call's ids are gone");
        // Start-up code runs before any call: no ids at all.
        let mut fresh = Recorder::default();
        assert!(matches!(fresh.record("1-0", incr()), Err(Refused::Error(e)) if e.contains("no entry")));
    }

    #[test]
    fn over_the_cap_traps() {
        let mut r = Recorder::default();
        r.begin(["1-0"].into_iter());
        for _ in 0..MAX_EFFECTS_PER_ENTRY {
            assert!(r.record("1-0", incr()).is_ok());
        }
        assert!(matches!(r.record("1-0", incr()), Err(Refused::Trap(_))));
        let big =
            Effect::Set { key: "k".into(), field: None, value: vec![0; MAX_EFFECT_BYTES_PER_ENTRY], ttl_ms: None };
        r.begin(["2-0"].into_iter());
        assert!(matches!(r.record("2-0", big), Err(Refused::Trap(_))));
    }
}
