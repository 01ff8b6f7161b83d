"""The gateway's ack on the wire: parsed by hand, refused whole when hostile; the
confirmed ranges it leaves behind stay few."""

from acks import add_range, covered, parse_ack


def test_the_confirmed_ranges_stay_few_and_the_highest_goes_first():
    ranges = []
    for lo in range(100, 0, -10):
        add_range(ranges, lo, lo + 1)
    assert len(ranges) == 8 and ranges[0] == (10, 11) and ranges[-1] == (80, 81)
    add_range(ranges, 12, 19)
    assert ranges[0] == (10, 21)
    add_range(ranges, 1, 100)
    assert ranges == [(1, 100)]


def test_an_ack_parses_to_its_ranges():
    assert parse_ack(b'{"ack":[[1,5],[7,7]]}', 9) == [(1, 5), (7, 7)]
    assert parse_ack(b'{"ack":[]}', 9) == []
    many = b'{"ack":[' + b",".join(b"[%d,%d]" % (n, n) for n in range(1, 60, 2)) + b"]}"
    assert len(parse_ack(many, 100)) == 30


def test_a_range_past_the_newest_seq_written_is_refused():
    assert parse_ack(b'{"ack":[[1,9]]}', 9) == [(1, 9)]
    assert parse_ack(b'{"ack":[[1,9]]}', 8) is None
    assert parse_ack(b'{"ack":[[1,1]]}', 0) is None  # nothing written yet


def test_covered_looks_in_every_range():
    ranges = [(1, 3), (7, 9)]
    assert [s for s in range(11) if covered(ranges, s)] == [1, 2, 3, 7, 8, 9]


def test_hostile_ack_bytes_are_refused_whole():
    for bad in (
        b"",
        b"{",
        b'{"ack":',
        b'{"ack":[[1,5]]',
        b'{"ack":[[1,5],]}',
        b'{"ack":[[1,5]],"x":1}',
        b'{"ack":[[5,1]]}',
        b'{"ack":[[0,1]]}',
        b'{"ack":[[-1,5]]}',
        b'{"ack":[[1,10]]}',  # past the newest seq written
        b'{"ack":[[1,99999999999999999999]]}',
        b'{"ack":[[1,+5]]}',
        b'{"ack":[[1, 5]]}',
        b'{"ack":[[1,5,6]]}',
        b'{"ack":[[[1,5]]]}',
        b'{"ack":[1,5]}',
        b'{"ack":[[1.0,5]]}',
        b'{"ack":[["1",5]]}',
        b'{"ack":[[1,5]' + b"]" * 500 + b"}",
        b'{"ack":[' + b"[" * 900 + b"]}",
    ):
        assert parse_ack(bad, 9) is None, bad
