//! From a condition's start to the action, end to end through a real node and coordinator on this host's
//! Docker engine: a busy loop (goal: the sustain window plus one poll interval) and memory growing toward a
//! 64 MiB limit at several rates (goal: before the kernel's OOM killer ends it).
//!
//! `cargo bench -p hemostat-tests --bench condition_latency -- [runs] [sustain seconds] [polls…]` (default
//! 5 runs, a 10 s window, polls of 1 and 3 s). Each run is a fresh container that waits for a file the bench
//! creates (the condition's start), so the time is from that moment to the `remediation_needed` event.

use std::time::{Duration, SystemTime};

use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, events_of};

/// Memory growth rates tried, MiB a second, into a 64 MiB limit.
const RATES: [u32; 2] = [2, 4];

fn script(work: &str) -> String {
    format!(
        "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; \
         while [ ! -f /tmp/go ]; do sleep 0.1; done; {work}"
    )
}

/// Runs `work` in a fresh container, starts it, and returns the time to its decision and the decision.
async fn run(s: &TestFleet, name: &str, extra: &[&str], work: &str) -> (Duration, pb::Event) {
    let name = s.scope.run(name, extra, &script(work));
    // Let the node sample it twice first: the condition, not the container's start, is measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.scope.docker(&["exec", &name, "touch", "/tmp/go"]);
    let started = SystemTime::now();
    let decision = eventually(&format!("a decision on {name}"), Duration::from_secs(120), || async {
        let events = events_of(&s.client, &name).await?;
        events
            .into_iter()
            .find(|e| matches!(e.r#type(), pb::EventType::RemediationNeeded | pb::EventType::FalseAlarm))
            .ok_or_else(|| "no decision yet".to_owned())
    })
    .await;
    let at = hemostat_proto::timestamp::from_proto(decision.time.as_ref().unwrap());
    s.scope.docker(&["rm", "-f", &name]);
    (at.duration_since(started).unwrap_or_default(), decision)
}

fn summary(times: &[Duration]) -> String {
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = secs.iter().copied().fold(0.0, f64::max);
    let mean = secs.iter().sum::<f64>() / secs.len() as f64;
    format!("min {min:.1} s, mean {mean:.1} s, max {max:.1} s over {} runs", secs.len())
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let runs = args.first().copied().unwrap_or(5) as usize;
    let sustain = Duration::from_secs(args.get(1).copied().unwrap_or(10));
    let polls: Vec<u64> = if args.len() > 2 { args[2..].to_vec() } else { vec![1, 3] };
    for poll in polls {
        let s = TestFleet::start_with(
            |c| {
                c.analyzer.patterns.sustain = sustain;
                c.remediation.storm.threshold = u32::MAX;
            },
            |n| {
                n.poll_interval = Duration::from_secs(poll);
                // A busy loop on this shared 2-core machine may get only a quarter of a core.
                n.detection.cpu_threshold = 10.0;
            },
        )
        .await;
        let mut times = Vec::new();
        for i in 0..runs {
            let (took, decision) = run(&s, &format!("cpu{poll}-{i}"), &[], "while :; do :; done").await;
            println!("cpu poll {poll} s run {i}: {took:.1?} ({}: {})", decision.decided_by, decision.reason);
            times.push(took);
        }
        println!(
            "busy loop, window {} s, poll {poll} s: {} (goal ≤ {} s)",
            sustain.as_secs(),
            summary(&times),
            sustain.as_secs() + poll
        );
        for rate in RATES {
            let mut times = Vec::new();
            let mut before_oom = 0;
            let work = format!(
                "i=0; while :; do dd if=/dev/zero of=/data/f$i bs=1048576 count={rate} 2>/dev/null; i=$((i+1)); sleep 1; done"
            );
            let limits = ["--memory", "64m", "--memory-swap", "64m", "--tmpfs", "/data:size=256m"];
            for i in 0..runs {
                let (took, decision) = run(&s, &format!("mem{poll}-{rate}-{i}"), &limits, &work).await;
                let leak = decision.decided_by == "memory_leak";
                before_oom += usize::from(leak);
                println!(
                    "memory {rate} MiB/s poll {poll} s run {i}: {took:.1?} ({}: {})",
                    decision.decided_by, decision.reason
                );
                times.push(took);
            }
            println!(
                "memory +{rate} MiB/s into 64 MiB (the limit after ~{} s), poll {poll} s: {}; decided as a leak before \
                 the OOM kill in {before_oom} of {runs}",
                64 / rate,
                summary(&times)
            );
        }
    }
}
