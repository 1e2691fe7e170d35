"""Client-side pacing: never more calls in a sliding minute than the plan allows, and no waiting below it."""

from cryptolake.services.client import MinutePacer


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_calls_under_the_limit_do_not_wait():
    t = FakeTime()
    pacer = MinutePacer(30, clock=t.clock, sleep=t.sleep)
    for _ in range(30):
        pacer.wait()
        t.now += 0.1
    assert t.slept == []


def test_the_next_call_waits_for_the_oldest_to_leave_the_window():
    t = FakeTime()
    pacer = MinutePacer(3, clock=t.clock, sleep=t.sleep)
    starts = []
    for _ in range(7):
        pacer.wait()
        starts.append(t.now)
        t.now += 1
    assert t.slept  # it had to wait
    for i in range(len(starts) - 3):
        assert starts[i + 3] - starts[i] >= 60  # any 4 consecutive calls span at least a minute
    assert starts[-1] - starts[0] == 120  # 7 calls at 3/min: the floor is two full windows, no more
