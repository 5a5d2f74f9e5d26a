//! Which upstream an attempt goes to: the route's split (or the one a running plan imposes),
//! among the members health lets take traffic.

use tokio::time::Instant;

use crate::plans::Plans;
use crate::routing::Call;
use crate::state::Runtime;
use crate::upstream::split::SmoothWrr;

/// The upstream (index into the runtime's upstreams) to send to: smooth weighted among the
/// available members of the route's split, or of the split a running plan imposes (not
/// `avoid`, when another is available); else a zero-weight standby; else the member ejected
/// longest ago (never a blackhole).
pub(super) fn choose(
    plans: &Plans,
    call: &Call<'_>,
    rt: &Runtime,
    avoid: Option<usize>,
) -> Option<usize> {
    let planned = plans.override_for(&call.route.key);
    // A plan's split whose every upstream is still configured; one naming an upstream a reload
    // removed is set aside (its weights would no longer line up with its members).
    let resolved = planned.as_ref().and_then(|o| {
        let members: Option<Vec<usize>> = o
            .members
            .iter()
            .map(|n| rt.upstreams.iter().position(|u| u.cfg.name == *n))
            .collect();
        members.map(|m| (m, &o.wrr))
    });
    let (members, split): (&[usize], &SmoothWrr) = match &resolved {
        Some((m, wrr)) => (m, wrr),
        None => (&call.route.split_members, &call.route.split),
    };
    if members.is_empty() {
        return None;
    }
    let now = Instant::now();
    let available = |i: usize| rt.upstreams[members[i]].health.available(now);
    let avoided = |i: usize| Some(members[i]) == avoid;
    let member = split
        .pick_among(|i| available(i) && !avoided(i))
        .or_else(|| (0..members.len()).find(|&i| available(i) && !avoided(i)))
        .or_else(|| (0..members.len()).find(|&i| available(i)))
        .or_else(|| {
            (0..members.len()).min_by_key(|&i| rt.upstreams[members[i]].health.ejected_at())
        })?;
    Some(members[member])
}
