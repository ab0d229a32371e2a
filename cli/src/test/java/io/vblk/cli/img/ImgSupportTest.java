package io.vblk.cli.img;

import static org.junit.jupiter.api.Assertions.*;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The qemu-img formatting helpers: QDict member order, size_to_str, size parsing, option parsing, percentages. */
class ImgSupportTest {
    @Test
    void jsonMembersFollowQdictBucketOrder() {
        // the order qemu-img check prints (observed with qemu-img 7.2)
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("filename", "a.qcow2");
        m.put("format", "qcow2");
        m.put("check-errors", 0L);
        m.put("image-end-offset", 1441792L);
        m.put("leaks", 2L);
        m.put("total-clusters", 1024L);
        m.put("allocated-clusters", 17L);
        m.put("fragmented-clusters", 16L);
        m.put("compressed-clusters", 16L);
        assertEquals("""
                {
                    "image-end-offset": 1441792,
                    "compressed-clusters": 16,
                    "total-clusters": 1024,
                    "check-errors": 0,
                    "leaks": 2,
                    "allocated-clusters": 17,
                    "filename": "a.qcow2",
                    "format": "qcow2",
                    "fragmented-clusters": 16
                }""", QemuJson.pretty(m));
        assertEquals("[]", QemuJson.pretty(List.of()));
        assertEquals("\"a\\\"b\\\\c\\n\"", QemuJson.quote("a\"b\\c\n"));
    }

    @Test
    void sizeToStrMatchesQemu() {
        assertEquals("0 B", ImgSupport.sizeToStr(0));
        assertEquals("4 KiB", ImgSupport.sizeToStr(4096));
        assertEquals("196 KiB", ImgSupport.sizeToStr(200704));
        assertEquals("1.32 MiB", ImgSupport.sizeToStr(1380352));
        assertEquals("3.2 MiB", ImgSupport.sizeToStr(3350528));
        assertEquals("64 MiB", ImgSupport.sizeToStr(64L << 20));
        assertEquals("1 GiB", ImgSupport.sizeToStr(1L << 30));
        assertEquals("0.977 KiB", ImgSupport.sizeToStr(1000));
        assertEquals("999 B", ImgSupport.sizeToStr(999));
    }

    @Test
    void sizesParseWithQemuSuffixes() {
        assertEquals(1024, ImgSupport.parseSize("1k"));
        assertEquals(64L << 20, ImgSupport.parseSize("64M"));
        assertEquals(3L << 29, ImgSupport.parseSize("1.5G"));
        assertEquals(512, ImgSupport.parseSize("512"));
        assertEquals(-1, ImgSupport.parseSize("1Q"));
        assertEquals(-1, ImgSupport.parseSize("-5"));
        assertEquals(-1, ImgSupport.parseSize("99999999999E"));
    }

    @Test
    void optionsParseLikeGetopt() throws Exception {
        ImgSupport.Args a = ImgSupport.parse(new String[] {"-fqcow2", "-o", "a=1", "-o", "b=2", "--output=json", "-q", "x.img", "1G"},
                "fo", "q", java.util.Set.of("output"), java.util.Set.of());
        assertEquals("qcow2", a.get("-f"));
        assertEquals("a=1,b=2", a.get("-o"));
        assertTrue(ImgSupport.jsonOutput(a));
        assertEquals(List.of("x.img", "1G"), a.positional);
        assertThrows(ImgSupport.UsageException.class, () -> ImgSupport.parse(new String[] {"-z"}, "f", "q", java.util.Set.of(), java.util.Set.of()));
        assertThrows(ImgSupport.UsageException.class, () -> ImgSupport.parse(new String[] {"-f"}, "f", "q", java.util.Set.of(), java.util.Set.of()));
    }

    @Test
    void percentagesRoundHalfEvenLikeGlibc() {
        assertEquals("3.12", CheckCommand.percent(32 * 100.0 / 1024));
        assertEquals("1.66", CheckCommand.percent(17 * 100.0 / 1024));
        assertEquals("94.12", CheckCommand.percent(16 * 100.0 / 17));
        assertEquals("0.00", CheckCommand.percent(0));
    }
}
