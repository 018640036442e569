"""rca.scheduler with a fake clock: window budgets, AIMD, retryDelay, fair picking. No sleeping."""

from __future__ import annotations

import pytest

from rca.limits import KeyLimits, QuotaHint
from rca.scheduler import RETIRE_AFTER, Ask, KeyBudget, plan


def budget(rpm: float | None = None, tpm: float | None = None, window: float = 10.0) -> KeyBudget:
    return KeyBudget(KeyLimits(rpm, tpm), window_s=window, margin_s=0.0)


def fill(b: KeyBudget, now: float, n: int, tokens: float = 0) -> list:
    return [b.spend(now, tokens) for _ in range(n)]


# -- the window --------------------------------------------------------------------------------


def test_requests_come_back_one_window_after_they_were_spent() -> None:
    b = budget(rpm=3)
    fill(b, 0.0, 2)
    b.spend(4.0, 0)
    assert not b.fits(5.0, 0) and b.ready_at(5.0, 0) == 10.0
    assert b.fits(10.0, 0)  # both spent at 0 are back at 10
    fill(b, 10.0, 2)
    assert not b.fits(10.0, 0) and b.ready_at(10.0, 0) == 14.0


def test_request_pace_never_exceeds_the_limit_in_any_window() -> None:
    b = budget(rpm=5, window=1.0)
    sent, now = [], 0.0
    while len(sent) < 50:
        now = max(now, b.ready_at(now, 0))
        b.spend(now, 0)
        sent.append(now)
    assert all(sum(1 for t in sent if s <= t < s + 1.0) <= 5 for s in sent)
    assert sent[-1] == pytest.approx(9.0)  # and it is as fast as the limit allows: 5 per window


def test_token_budget_is_charged_with_estimates_and_corrected_by_real_counts() -> None:
    b = budget(rpm=100, tpm=100)
    first = b.spend(0.0, 60)
    assert not b.fits(1.0, 50) and b.fits(1.0, 40)
    assert b.ready_at(1.0, 50) == 10.0
    b.succeeded(first, used_tokens=30)  # the server counted less than we guessed: room comes back now
    assert b.fits(1.0, 50) and b.used == 30


def test_a_call_bigger_than_the_whole_budget_waits_for_an_empty_window_not_forever() -> None:
    b = budget(rpm=100, tpm=100)
    b.spend(0.0, 10)
    assert not b.fits(1.0, 500) and b.ready_at(1.0, 500) == 10.0
    assert b.fits(10.0, 500)


def test_retry_delay_is_honoured_and_a_429_gives_the_units_back() -> None:
    b = budget()
    spends = fill(b, 0.0, 3)
    b.rate_limited_by(1.0, spends[-1], retry_after=4.0, hint=QuotaHint("requests", 10))
    assert b.count == 2  # the server did not count the rejected call
    assert not b.fits(4.9, 0) and b.fits(5.0, 0) and b.ready_at(2.0, 0) == 5.0


def test_without_retry_delay_the_cooldown_doubles_and_resets_on_success() -> None:
    b = budget(window=12.0)  # cooldown starts at a twelfth of the window: 1 s
    b.rate_limited_by(0.0, b.spend(0.0, 0), None, QuotaHint())
    assert b.cooldown_until == pytest.approx(1.0)
    b.rate_limited_by(1.0, b.spend(1.0, 0), None, QuotaHint())
    assert b.cooldown_until == pytest.approx(3.0)
    b.succeeded(b.spend(3.0, 0))
    b.rate_limited_by(4.0, b.spend(4.0, 0), None, QuotaHint())
    assert b.cooldown_until == pytest.approx(5.0)


# -- learning ----------------------------------------------------------------------------------


def test_unknown_limits_slow_start_then_a_429_decreases_multiplicatively() -> None:
    b = budget()
    first = fill(b, 0.0, 4)
    assert not b.fits(0.0, 0)  # four calls in flight before any answer
    for spend in first:
        b.succeeded(spend)
    assert b.describe()["rpm"] is None  # still unknown: not paced, only probed
    assert len(fill(b, 0.0, 6)) == 6 and not b.fits(0.0, 0)  # half a call more in flight per success
    b.rate_limited_by(0.1, None, None, QuotaHint())  # no quota value: learn from what got through
    assert b.describe()["rpm"] == pytest.approx(0.8 * 10) and b.describe()["rpm_source"] == "learned"
    assert not b.fits(0.2, 0)  # 10 in the window, 8 allowed: paced from now on


def test_one_decrease_per_pace_not_per_rejected_call() -> None:
    b = budget()
    spends = fill(b, 0.0, 4)
    for spend in spends:
        b.succeeded(spend)
    late = fill(b, 0.0, 8)  # all sent before the first 429 came back
    for spend in late[5:]:
        b.rate_limited_by(0.5, spend, None, QuotaHint())
    assert b.describe()["rpm"] == pytest.approx(0.8 * 9) and b.describe()["decreases"] == 1  # 9 got through
    now = b.ready_at(0.5, 0)
    b.rate_limited_by(now, b.spend(now, 0), None, QuotaHint())
    assert b.describe()["decreases"] == 2  # a call sent at the new pace that fails again: decrease again


def test_additive_increase_one_step_per_window_while_the_limit_binds() -> None:
    b = budget()
    for spend in fill(b, 0.0, 4):
        b.succeeded(spend)
    fill(b, 0.0, 6)
    b.rate_limited_by(0.0, b.spend(0.0, 0), None, QuotaHint())  # pace 8; step: 1 call (5% of 10, at least 1)
    paces, now = [], 0.0
    for _ in range(4 * 8):  # four windows of calls sent as fast as the pace allows, all answered
        now = b.ready_at(now, 0)
        b.succeeded(b.spend(now, 0))
        paces.append(b.describe()["rpm"])
    assert paces[0] == 8 and max(paces) == 11 and paces == sorted(paces)
    b.succeeded(b.spend(now + 100, 0))  # a lone call in an empty window says nothing about the limit
    assert b.describe()["rpm"] == 11


def test_a_pace_cut_below_two_calls_a_window_still_climbs_back() -> None:
    b = budget()
    for spend in fill(b, 0.0, 2):
        b.succeeded(spend)
    b.rate_limited_by(0.1, b.spend(0.1, 0), None, QuotaHint())  # 2 got through: the pace drops to 1.6
    assert b.describe()["rpm"] == pytest.approx(1.6)
    now = 0.1
    for _ in range(6):  # one call a window, each filling its window: the limit binds
        now = b.ready_at(now, 0)
        b.succeeded(b.spend(now, 0))
    assert b.describe()["rpm"] > 3


def test_quota_value_from_the_server_sets_the_pace_without_a_decrease() -> None:
    b = budget()
    fill(b, 0.0, 5)
    b.rate_limited_by(0.1, b.spend(0.0, 0), 3.0, QuotaHint("requests", 5))
    state = b.describe()
    assert state["rpm"] == 5 and state["rpm_source"] == "server" and state["decreases"] == 0
    fill(b, 19.0, 2)
    b.rate_limited_by(19.5, b.spend(19.0, 0), None, QuotaHint("requests", 5))  # 2 of ours and still 429: shared quota
    assert b.describe()["rpm"] == pytest.approx(0.8 * 2) and b.describe()["decreases"] == 1


def test_a_429_when_our_own_calls_filled_the_quota_is_a_timing_slip_not_a_lower_limit() -> None:
    b = budget(rpm=5)
    fill(b, 0.0, 4)  # the fifth arrived a moment before the server had let the first one go
    b.rate_limited_by(10.0, b.spend(9.99, 0), 0.05, QuotaHint("requests", 5))
    assert b.describe()["rpm"] == 5 and b.describe()["decreases"] == 0
    assert b.cooldown_until == pytest.approx(10.05)  # the pause the server asked for is enough
    later = budget(rpm=5)
    fill(later, 0.0, 5)
    assert later.fits(10.0, 0)  # in our view the whole batch is back; the server lets it go a moment later
    later.rate_limited_by(10.01, later.spend(10.0, 0), 0.03, QuotaHint("requests", 5))
    assert later.describe()["decreases"] == 0


def test_a_pace_taken_from_another_key_is_a_ceiling_until_this_key_is_told_its_own() -> None:
    b = budget()
    b.requests.adopt(4)
    assert b.describe()["rpm"] == 4 and b.describe()["rpm_source"] == "another key" and not b.probing()
    now = 0.0
    for _ in range(20):
        now = b.ready_at(now, 0)
        b.succeeded(b.spend(now, 0))
    assert b.describe()["rpm"] == 4  # climbing past the quota the pool has met would only meet it again
    b.rate_limited_by(now, b.spend(now, 0), 1.0, QuotaHint("requests", 3))
    assert b.describe()["rpm"] == 3 and b.describe()["rpm_source"] == "server"


def test_configured_limits_are_a_ceiling_for_increases() -> None:
    b = budget(rpm=4, tpm=1000)
    now = 0.0
    for _ in range(40):
        now = b.ready_at(now, 100)
        b.succeeded(b.spend(now, 100), used_tokens=100)
    assert b.describe()["rpm"] == 4 and b.describe()["tpm"] == 1000
    assert b.describe()["rpm_source"] == "configured"


def test_a_token_quota_429_teaches_the_token_limit() -> None:
    b = budget(rpm=100)
    fill(b, 0.0, 3, tokens=300)
    b.rate_limited_by(0.1, b.spend(0.0, 300), 2.0, QuotaHint("tokens", 1000))
    assert b.describe()["tpm"] == 1000 and b.describe()["rpm"] == 100
    assert not b.fits(5.0, 200) and b.fits(5.0, 100)


def test_a_burst_of_429s_is_one_round_and_rounds_without_an_answer_retire_the_key() -> None:
    b = budget(rpm=10)
    burst = fill(b, 0.0, 6)
    for spend in burst:  # all sent before the first 429 came back: one round
        b.rate_limited_by(0.1, spend, 0.5, QuotaHint("requests", 10))
    assert b.strikes == 1 and b.hopeless() is None
    now = 0.1
    for _ in range(RETIRE_AFTER - 2):  # each round sent after the last one's 429, when the key may be used
        now = b.ready_at(now, 0)
        b.rate_limited_by(now + 0.01, b.spend(now, 0), 0.5, QuotaHint("requests", 10))
    assert b.strikes == RETIRE_AFTER - 1 and b.hopeless() is None
    now = b.ready_at(now, 0)
    b.succeeded(b.spend(now, 0))  # one answer and the count starts again
    for _ in range(RETIRE_AFTER):
        now = b.ready_at(now, 0)
        b.rate_limited_by(now + 0.01, b.spend(now, 0), 0.5, QuotaHint("requests", 10))
    assert f"{RETIRE_AFTER} rounds of calls answered 429" in (b.hopeless() or "")


def test_calls_granted_before_a_429_and_not_yet_sent_are_held_back() -> None:
    b = budget(rpm=10)
    sent, *unsent = fill(b, 0.0, 3)
    b.sent(sent, 0.01)
    assert not b.over(0.02)
    b.rate_limited_by(0.05, sent, 2.0, QuotaHint("requests", 3))  # the server asks for a 2 s rest
    assert b.over(0.06) and not b.over(2.1)
    told = budget()
    spends = fill(told, 0.0, 6)  # probing: the limit unknown
    told.rate_limited_by(0.1, spends[0], 0.0, QuotaHint("requests", 3))  # 3 named; 5 of ours still count
    assert told.over(0.1)
    for spend in spends[1:3]:
        told.refund(spend)  # held back, given back
    assert not told.over(0.1)


def test_a_quota_of_zero_is_hopeless_at_once_and_a_bare_429_changes_nothing() -> None:
    b = budget()
    b.turned_away(b.spend(0.0, 0))  # a 429 naming no quota: refunded, no cooldown, nothing learned
    assert (b.count, b.in_flight, b.cooldown_until, b.busy, b.rate_limited) == (0, 0, 0.0, 1, 0)
    assert b.describe()["rpm"] is None and b.hopeless() is None
    b.rate_limited_by(1.0, b.spend(1.0, 0), 30.0, QuotaHint("requests", 0))
    assert "quota of 0" in (b.hopeless() or "")


# -- picking -----------------------------------------------------------------------------------


def test_a_large_call_waiting_for_tokens_does_not_block_small_ones() -> None:
    b = budget(rpm=1000, tpm=100)
    b.spend(0.0, 70)
    asks = [Ask(60, 1.0, 0), Ask(10, 2.0, 1), Ask(10, 3.0, 2)]
    granted = plan(4.0, asks, [b])
    assert [a.seq for a, _, _ in granted] == [1, 2]  # they fit beside the 60 the big one needs at t=10


def test_small_calls_cannot_starve_a_large_one() -> None:
    b = budget(rpm=1000, tpm=100)
    b.spend(0.0, 70)
    big, seq, now, big_sent = Ask(60, 0.5, 0), 1, 0.5, None
    while big_sent is None and now < 100:
        smalls = [Ask(10, now, seq)]  # a fresh small call every half second, forever
        seq += 1
        for ask, _, _ in plan(now, [big, *smalls], [b]):
            if ask is big:
                big_sent = now
        now += 0.5
    assert big_sent == 10.0  # the first moment the 70 spent at t=0 came back


def test_reservation_holds_one_key_and_the_others_stay_free() -> None:
    a, b = budget(rpm=1000, tpm=100), budget(rpm=1000, tpm=100)
    a.spend(0.0, 90)
    b.spend(0.0, 50)
    granted = plan(1.0, [Ask(80, 0.0, 0), Ask(40, 1.0, 1), Ask(30, 1.0, 2)], [a, b])
    assert [(ask.seq, key) for ask, key, _ in granted] == [(1, 1)]  # 30 more on b would steal from the 80's reservation


def test_oldest_first_and_retries_keep_their_place() -> None:
    b = budget(rpm=1)
    granted = plan(0.0, [Ask(0, 5.0, 0), Ask(0, 1.0, 7)], [b])
    assert [a.seq for a, _, _ in granted] == [7]


def test_least_recently_used_key_first() -> None:
    keys = [budget(rpm=10), budget(rpm=10), budget(rpm=10)]
    granted = plan(0.0, [Ask(0, 0.0, i) for i in range(6)], keys)
    assert [k for _, k, _ in granted] == [0, 1, 2, 0, 1, 2]


# -- configuration -----------------------------------------------------------------------------


def test_limits_parse_from_text_and_env() -> None:
    assert KeyLimits.parse("rpm=15,tpm=250000") == KeyLimits(15, 250_000)
    assert KeyLimits.parse(" RPM = 2000 ") == KeyLimits(rpm=2000)
    assert KeyLimits.from_env({"RCA_KEY_LIMITS": "tpm=1e6"}) == KeyLimits(tpm=1_000_000)
    assert KeyLimits.from_env({}) is None
    for bad in ("rpm", "rpm=0", "rpm=-3", "qps=4", "rpm=1,rpm=2", "rpm=ten"):
        with pytest.raises(ValueError, match="rpm=15,tpm=250000"):
            KeyLimits.parse(bad)
