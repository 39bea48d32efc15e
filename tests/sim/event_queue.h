// Simulated time and the event queue that drives a whole simulated cluster.
//
// Contract: events run in order of (time_ms, insertion sequence), so two runs
// that schedule the same events in the same order run identically. Nothing
// here reads a wall clock or a global random source. Single-threaded.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

namespace custos::sim {

// Bounds a runaway scenario (a livelock that schedules forever) so a bad
// core fails the run instead of hanging CI.
inline constexpr uint64_t kEventsPerRunMax = 5'000'000;

class EventQueue {
 public:
  using Action = std::function<void()>;

  uint64_t now_ms() const { return now_ms_; }
  uint64_t executed() const { return executed_; }
  bool empty() const { return events_.empty(); }
  size_t pending() const { return events_.size(); }

  // Runs `action` at absolute time at_ms (never earlier than now: a time in
  // the past runs at now, after the events already queued for now).
  void at(uint64_t at_ms, Action action) {
    events_.push(Event{std::max(at_ms, now_ms_), next_seq_++, std::move(action)});
  }
  void after(uint64_t delay_ms, Action action) { at(now_ms_ + delay_ms, std::move(action)); }

  // Time of the next event; only when !empty().
  uint64_t next_time_ms() const {
    assert(!events_.empty());
    return events_.top().time_ms;
  }

  // Pops and runs the next event, advancing the clock to its time.
  void run_one() {
    assert(!events_.empty());
    // Copy out before pop: the action may schedule more events.
    Event event = events_.top();
    events_.pop();
    now_ms_ = event.time_ms;
    ++executed_;
    event.action();
  }

 private:
  struct Event {
    uint64_t time_ms;
    uint64_t seq;
    Action action;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq;
    }
  };

  std::priority_queue<Event, std::vector<Event>, Later> events_;
  uint64_t now_ms_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace custos::sim
