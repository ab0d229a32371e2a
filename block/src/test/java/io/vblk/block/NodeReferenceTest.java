package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Node references (bdrv_ref/bdrv_unref): attached nodes outlive their parent, opened children do not. */
class NodeReferenceTest extends BlockTestSupport {
    @Test
    void attachedNodeSurvivesTheParentsClose() throws Exception {
        BlockNode base = open("driver=memory,size=64K");
        byte[] data = patternBytes(4096, 1);
        assertEquals(0, write(base, 0, data, 0));
        for (int round = 0; round < 2; round++) {
            BlockNode parent = open("driver=raw,file.driver=memory,file.size=64K");
            parent.attachChild("backing", BlockChild.Role.BACKING, base);
            assertEquals(0, run(parent::close));
            assertTrue(parent.isClosed());
            assertTrue(parent.file().node().isClosed(), "a child the parent opened closes with it");
            assertFalse(base.isClosed(), "the caller's reference keeps the attached node open");
            assertArrayEquals(data, read(base, 0, 4096));
        }
        assertEquals(0, run(base::close));
        assertTrue(base.isClosed());
        assertEquals(-Errno.ENOMEDIUM, run(() -> base.pdiscard(0, 4096)));
    }

    @Test
    void everyReferenceMustBeDropped() throws Exception {
        BlockNode n = open("driver=memory,size=64K");
        n.ref();
        assertEquals(0, run(n::close));
        assertFalse(n.isClosed());
        assertEquals(0, run(n::close));
        assertTrue(n.isClosed());
    }
}
