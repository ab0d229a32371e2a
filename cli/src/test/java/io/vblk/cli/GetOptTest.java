package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class GetOptTest {
    private static List<String> parse(String spec, Map<String, Boolean> longs, String... args) throws CliException {
        GetOpt g = new GetOpt("t", args, 0, spec, longs);
        List<String> seen = new ArrayList<>();
        for (String o; (o = g.next()) != null; ) {
            seen.add(g.optarg() == null ? o : o + "=" + g.optarg());
        }
        seen.add("|" + String.join(",", g.operands()));
        return seen;
    }

    @Test
    void shortOptionsClusterAndTakeAttachedOrSeparateArguments() throws CliException {
        assertEquals(List.of("r", "q", "c=5", "d=7", "|file"), parse("rqc:d:", Map.of(), "-rq", "-c5", "file", "-d", "7"));
    }

    @Test
    void longOptionsWithEqualsOrSeparateArgument() throws CliException {
        assertEquals(List.of("output=json", "path=aio", "random", "|f"),
                parse("", Map.of("output", true, "path", true, "random", false), "--output=json", "--path", "aio", "f", "--random"));
    }

    @Test
    void doubleDashEndsOptions() throws CliException {
        assertEquals(List.of("r", "|-x,y"), parse("r", Map.of(), "-r", "--", "-x", "y"));
    }

    @Test
    void errorsReadLikeGetopt() {
        CliException e = assertThrows(CliException.class, () -> parse("r", Map.of(), "-x"));
        assertEquals("t: invalid option -- 'x'", e.getMessage());
        e = assertThrows(CliException.class, () -> parse("c:", Map.of(), "-c"));
        assertEquals("t: option requires an argument -- 'c'", e.getMessage());
        e = assertThrows(CliException.class, () -> parse("", Map.of(), "--bogus"));
        assertEquals("t: unrecognized option '--bogus'", e.getMessage());
        e = assertThrows(CliException.class, () -> parse("", Map.of("random", false), "--random=1"));
        assertEquals("t: option '--random' doesn't allow an argument", e.getMessage());
    }

    @Test
    void aLoneDashIsAnOperand() throws CliException {
        GetOpt g = new GetOpt("t", new String[] {"-"}, 0, "r", Map.of());
        assertNull(g.next());
        assertEquals(List.of("-"), g.operands());
    }
}
