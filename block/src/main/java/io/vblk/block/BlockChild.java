package io.vblk.block;

/** An edge of the graph (QEMU's BdrvChild): a parent's {@code file} or {@code backing} child. */
public final class BlockChild {
    /** Child roles, as QEMU's BdrvChildRole for the edges vblk uses. */
    public enum Role { FILE, BACKING, DATA }

    private final String name;
    private final Role role;
    private final BlockNode parent;
    private final BlockNode node;

    BlockChild(String name, Role role, BlockNode parent, BlockNode node) {
        this.name = name;
        this.role = role;
        this.parent = parent;
        this.node = node;
    }

    public String name() { return name; }
    public Role role() { return role; }
    public BlockNode parent() { return parent; }
    public BlockNode node() { return node; }

    @Override
    public String toString() {
        return name + " -> " + node;
    }
}
