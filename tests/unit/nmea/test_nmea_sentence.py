"""Sentences: checksums, talkers, field decoding, and every way a line is refused."""

from __future__ import annotations

import pytest

from appliance.nmea.framing import LineEnd, RawLine
from appliance.nmea.sentence import (
    Gga,
    Gll,
    Gns,
    Gsa,
    Gsv,
    NmeaDate,
    Pubx04,
    Reject,
    Rmc,
    Sentence,
    Zda,
    decode,
    nmea_checksum,
    parse_degrees,
    parse_time_of_day,
    render,
)
from appliance.timebase import NS_PER_S


def line(body: str, *, end: LineEnd = LineEnd.EOL, checksum: str | None = None) -> RawLine:
    """A framed line for ``body``, with its correct checksum unless ``checksum`` is given ("" for none)."""
    cs = f"{nmea_checksum(body.encode()):02X}" if checksum is None else checksum
    text = f"${body}*{cs}" if cs else f"${body}"
    return RawLine(text.encode(), 7, end)


def ok(body: str, **kw: object) -> Sentence:
    result = decode(line(body), **kw)  # type: ignore[arg-type]
    assert not isinstance(result, Reject), result
    return result


# --- checksums ---------------------------------------------------------------------------------


def test_checksum_of_a_known_sentence() -> None:
    body = b"GPGGA,202640.000,4404.1306,N,12118.8515,W,2,10,0.98,1127.7,M,-19.6,M,0000,0000"
    assert nmea_checksum(body) == 0x6C


def test_render_round_trips() -> None:
    raw = render("GPZDA,202640.000,13,04,2015,,")
    assert raw == b"$GPZDA,202640.000,13,04,2015,,*54\r\n"
    assert isinstance(decode(RawLine(raw.rstrip(), 0, LineEnd.EOL)), Zda)


def test_lowercase_checksum_digits_are_accepted() -> None:
    assert isinstance(decode(line("GPZDA,202640.000,13,04,2015,,", checksum="54".lower())), Zda)
    assert isinstance(decode(line("GNZDA,001052.00,10,01,2017,00,00", checksum="7a")), Zda)


@pytest.mark.parametrize("bad", ["55", "5", "XY", "544", "5*4"])
def test_wrong_checksum_is_refused(bad: str) -> None:
    assert decode(line("GPZDA,202640.000,13,04,2015,,", checksum=bad)) is Reject.BAD_CHECKSUM


def test_wrong_checksum_is_refused_even_when_optional() -> None:
    result = decode(line("GPZDA,202640.000,13,04,2015,,", checksum="00"), checksum_optional=True)
    assert result is Reject.BAD_CHECKSUM


def test_missing_checksum() -> None:
    body = "GPGGA,222449,3349.0337,S,01843.9282,E,1,07,02.31,000115.4,M,0033.3,M,,"
    assert decode(line(body, checksum="")) is Reject.NO_CHECKSUM
    gga = decode(line(body, checksum=""), checksum_optional=True)
    assert isinstance(gga, Gga) and gga.quality == 1 and gga.sats_used == 7


@pytest.mark.parametrize("end", [LineEnd.NEXT_START, LineEnd.BINARY, LineEnd.EOF])
def test_cut_off_lines_are_truncated_not_missing_checksum(end: LineEnd) -> None:
    assert decode(line("GPRMC,000346.03,A,4808", checksum="", end=end)) is Reject.TRUNCATED
    assert decode(line("GPRMC,000346.03,A,4808", checksum="", end=end), checksum_optional=True) is (Reject.TRUNCATED)
    assert decode(line("GPGSA,A,3,26,15", checksum="3", end=end)) is Reject.TRUNCATED


def test_complete_sentence_run_into_the_next_is_good() -> None:
    assert isinstance(decode(line("GPGSA,A,1,,,,,,,,,,,,,,,", end=LineEnd.NEXT_START)), Gsa)


# --- talkers and types -------------------------------------------------------------------------


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "QZ", "GQ", "GI", "IN", "ZZ", "9X"])
def test_every_talker_is_welcome(talker: str) -> None:
    rmc = ok(f"{talker}RMC,120000.00,A,4807.038,N,01131.000,E,0.0,0.0,230324,,,A")
    assert isinstance(rmc, Rmc) and rmc.talker == talker
    gsv = ok(f"{talker}GSV,1,1,02,01,40,083,46,02,17,308,41")
    assert isinstance(gsv, Gsv) and gsv.in_view == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("GPVTG,000.0,T,357.0,M,000.0,N,0000.1,K,A", Reject.IGNORED),
        ("GPTXT,01,01,02,ANTSTATUS=OK", Reject.IGNORED),
        ("GNGST,001052.00,12,,,,3.2,2.1,4.8", Reject.IGNORED),
        ("PMTK001,604,3", Reject.PROPRIETARY),
        ("PGLOR,SAT,GR,,,,", Reject.PROPRIETARY),
        ("PUBX,00,081350.00,4717.113210,N", Reject.PROPRIETARY),
        ("GYOACC,0.01", Reject.UNKNOWN_TYPE),
        ("SNRSTAT,1,2", Reject.UNKNOWN_TYPE),
        ("GPXYZ,1,2", Reject.UNKNOWN_TYPE),
        ("gprmc,1", Reject.UNKNOWN_TYPE),
        ("GPN,00000.0000,E", Reject.UNKNOWN_TYPE),
        ("GPRMC,12:00:00,A", Reject.DECODE_ERROR),
        ("GPGGA,256000.00,,,,,0", Reject.DECODE_ERROR),
        ("GPRMC", Reject.DECODE_ERROR),
    ],
)
def test_refusals(body: str, reason: Reject) -> None:
    assert decode(line(body)) is reason


# --- fields ------------------------------------------------------------------------------------


def test_rmc() -> None:
    rmc = ok("GPRMC,202640.000,A,4404.1306,N,12118.8515,W,0.03,225.97,130415,,,D")
    assert isinstance(rmc, Rmc)
    assert (rmc.talker, rmc.arrival_ns, rmc.bad_field) == ("GP", 7, False)
    assert rmc.tod_ns == (20 * 3600 + 26 * 60 + 40) * NS_PER_S
    assert (rmc.status, rmc.mode) == ("A", "D")
    assert rmc.date == NmeaDate(15, 4, 13, two_digit=True)
    assert rmc.lat_deg == pytest.approx(44.068843333)
    assert rmc.lon_deg == pytest.approx(-121.314191667)


def test_rmc_malformed_date_is_absent_not_fatal() -> None:
    rmc = ok("GPRMC,000231.099,A,4829.0005,N,00022.0015,E,0.15,212.28,2208-1,,,A")
    assert isinstance(rmc, Rmc) and rmc.date is None and rmc.bad_field
    assert rmc.tod_ns == (2 * 60 + 31) * NS_PER_S + 99_000_000


def test_rmc_nmea41_nav_status_does_not_matter() -> None:
    rmc = ok("GNRMC,120213.000,A,5957.0062,N,01100.6429,E,0.00,0.00,310722,,,D,V")
    assert isinstance(rmc, Rmc) and rmc.status == "A" and rmc.mode == "D"


def test_zda() -> None:
    zda = ok("GPZDA,000427.00,22,08,1999,,")
    assert isinstance(zda, Zda) and zda.date == NmeaDate(1999, 8, 22, two_digit=False)
    assert zda.tod_ns == 267 * NS_PER_S


def test_gga_and_its_empty_quality() -> None:
    gga = ok("GPGGA,202640.000,4404.1306,N,12118.8515,W,2,10,0.98,1127.7,M,-19.6,M,0000,0000")
    assert isinstance(gga, Gga) and (gga.quality, gga.sats_used, gga.alt_m) == (2, 10, 1127.7)
    empty = ok("GPGGA,005947.00,4036.46,N,07330.30,W,,,,,,,,,")
    assert isinstance(empty, Gga) and empty.quality is None and empty.lat_deg is not None


def test_gns() -> None:
    gns = ok("GNGNS,213712.000,4111.59903,N,11156.54809,W,AANN,13,0.93,01482.5,-016.5,,")
    assert isinstance(gns, Gns) and gns.mode == "AANN" and gns.sats_used == 13 and gns.alt_m == 1482.5


def test_gll() -> None:
    gll = ok("GNGLL,4111.59903,N,11156.54809,W,213712.000,A,A")
    assert isinstance(gll, Gll) and (gll.status, gll.mode) == ("A", "A")
    assert gll.tod_ns == (21 * 3600 + 37 * 60 + 12) * NS_PER_S


def test_gsa_with_and_without_system_id() -> None:
    gsa = ok("GNGSA,A,3,68,69,70,78,84,85,,,,,,,1.5,1.3,1.0,2")
    assert isinstance(gsa, Gsa) and gsa.fix_type == 3 and gsa.prns == (68, 69, 70, 78, 84, 85)
    assert gsa.system_id == 2
    old = ok("GPGSA,A,1,,,,,,,,,,,,,,,")
    assert isinstance(old, Gsa) and (old.fix_type, old.prns, old.system_id) == (1, (), None)


def test_pubx04_leap_seconds() -> None:
    pubx = ok("PUBX,04,073731.00,091202,113851.00,1196,15D,1930035,-2660.664,43,")
    assert isinstance(pubx, Pubx04)
    assert (pubx.leap_s, pubx.leap_is_default) == (15, True)
    assert pubx.date == NmeaDate(2, 12, 9, two_digit=True)
    sure = ok("PUBX,04,073731.00,091202,113851.00,1196,18,1930035,-2660.664,43,")
    assert isinstance(sure, Pubx04) and (sure.leap_s, sure.leap_is_default) == (18, False)


def test_garbage_in_optional_fields_is_flagged() -> None:
    gga = ok("GPGGA,235952.00,0000.0000,N,00000.0000,E,x,00,0.0,nan,M,,M,,")
    assert isinstance(gga, Gga) and gga.bad_field and gga.quality is None and gga.alt_m is None


# --- exact conversions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("000000", 0),
        ("132820.60", (13 * 3600 + 28 * 60 + 20) * NS_PER_S + 600_000_000),
        ("132827.20", (13 * 3600 + 28 * 60 + 27) * NS_PER_S + 200_000_000),  # 0.2 is no float
        ("000231.099", (2 * 60 + 31) * NS_PER_S + 99_000_000),
        ("235959.123456789123", 86_399 * NS_PER_S + 123_456_789),
        ("235960.5", 86_400 * NS_PER_S + 500_000_000),  # a leap second
        ("120000.", 43_200 * NS_PER_S),
    ],
)
def test_time_of_day_is_exact(text: str, ns: int) -> None:
    assert parse_time_of_day(text) == ns


@pytest.mark.parametrize("text", ["", "1200", "240000", "126000", "120061", "12:00:00", "1200a0", " 120000"])
def test_time_of_day_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_of_day(text)


def test_degrees() -> None:
    assert parse_degrees("4404.1306", "N") == pytest.approx(44 + 4.1306 / 60)
    assert parse_degrees("12118.8515", "W") == pytest.approx(-(121 + 18.8515 / 60))
    assert parse_degrees("0000.0000", "S") == 0.0
    for text, hemi in (("44.1", "N"), ("4404.1306", "X"), ("abc", "N")):
        with pytest.raises(ValueError):
            parse_degrees(text, hemi)
