package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class MainTest {
    @Test
    void versionAndHelp() {
        CliRun v = CliRun.of("--version");
        assertEquals(0, v.rc());
        assertTrue(v.out().startsWith("vblk version "), v.out());
        CliRun h = CliRun.of("--help");
        assertEquals(0, h.rc());
        for (String c : Main.COMMANDS.keySet()) {
            assertTrue(h.out().contains("  " + c + " "), c + " listed");
        }
    }

    @Test
    void everyBuiltInCommandHasHelp() {
        for (var e : Main.COMMANDS.entrySet()) {
            if (!Main.builtIn(e.getValue())) continue;
            CliRun r = CliRun.of(e.getKey(), "--help");
            assertEquals(0, r.rc(), e.getKey() + ": " + r.err());
            assertTrue(r.out().contains("sage"), e.getKey() + " prints a usage: " + r.out());
            assertEquals(r.out(), CliRun.of("help", e.getKey()).out());
        }
    }

    @Test
    void unknownCommandAndNoArguments() {
        CliRun r = CliRun.of("frobnicate");
        assertEquals(1, r.rc());
        assertEquals("vblk: Command not found: frobnicate\nTry 'vblk --help' for more information\n", r.err());
        assertEquals(1, CliRun.of().rc());
    }

    @Test
    void missingModulesSayNotBuiltIn() throws Exception {
        Main.Command ghost = new Main.Command("io.vblk.cli.NoSuchCommand", "x");
        CliException e = org.junit.jupiter.api.Assertions.assertThrows(CliException.class, () -> Main.find("ghost", ghost));
        assertEquals("'ghost' is not built in (io.vblk.cli.NoSuchCommand is missing from this build)", e.getMessage());
    }

    @Test
    void usageErrorsPointToHelpAndUserErrorsHaveNoStackTrace() {
        CliRun r = CliRun.of("io", "-x");
        assertEquals(1, r.rc());
        assertEquals("vblk: invalid option -- 'x'\nTry 'vblk io --help' for more information\n", r.err());
        CliRun b = CliRun.of("bench", "-f", "raw", "/nonexistent/dir/img");
        assertEquals(1, b.rc());
        assertEquals(1, b.err().lines().count(), b.err());
        assertTrue(!b.err().contains("\tat "), b.err());
    }
}
