"""Scenes for the preflight tests, made with bpy in a child Blender.

    preflight_scenes.py OUT.blend KIND

KIND ``bad``: no active camera (one camera object, not set), a 0-pixel render size, a movie
output, unbaked cloth, soft body, particles, rigid body world, a fluid domain and a Geometry
Nodes simulation zone, a Python driver, a registered text script and a node tree from an
add-on. ``clean``: a camera, a baked cloth cache, a simple-expression driver. ``sequencer``:
no camera, a color strip in the sequencer (renders without a camera), a registered text
block (a warning). ``nested``: libraries
linked two levels deep with relative paths (OUT must be ROOT/shots/seq/NAME.blend).
``nested_moved``: the same chain at uneven depths (OUT must be ROOT/shots/seq/sh010/NAME.blend)
after the props library moved: the main file still names its old place, the
character library its new one (what Blender follows).

    preflight_scenes.py DIR findings

writes one scene per finding into DIR (``FINDING_SCENES``: each triggers one check, in one
Blender start), and ``clean.blend``.
"""

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Blender's --python adds no folder


def base(frames: int = 4) -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frames
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 36, 100
    scene.render.engine = "BLENDER_WORKBENCH"
    return scene


def obj(scene, name):
    data = bpy.data.meshes.new(name)
    verts = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    data.from_pydata(verts, [], faces)
    o = bpy.data.objects.new(name, data)
    scene.collection.objects.link(o)
    return o


def camera(scene, active=True):
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.location = (0, 0, 5)
    scene.collection.objects.link(cam)
    if active:
        scene.camera = cam


def gn_simulation(o):
    tree = bpy.data.node_groups.new("Sim", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    sim_in, sim_out = tree.nodes.new("GeometryNodeSimulationInput"), tree.nodes.new("GeometryNodeSimulationOutput")
    sim_in.pair_with_output(sim_out)
    tree.links.new(group_in.outputs[0], sim_in.inputs[0])
    tree.links.new(sim_in.outputs[1], sim_out.inputs[1])
    tree.links.new(sim_out.outputs[0], group_out.inputs[0])
    mod = o.modifiers.new("GeoSim", "NODES")
    mod.node_group = tree
    return mod


def addon_tree():
    class AbrTestTree(bpy.types.NodeTree):
        bl_idname = "AbrTestTreeType"
        bl_label = "ABR test tree"
        bl_icon = "NODETREE"

    class AbrTestNode(bpy.types.Node):
        bl_idname = "AbrTestNode"
        bl_label = "ABR test node"

    bpy.utils.register_class(AbrTestTree)
    bpy.utils.register_class(AbrTestNode)
    tree = bpy.data.node_groups.new("AddonTree", "AbrTestTreeType")
    tree.nodes.new("AbrTestNode")
    tree.use_fake_user = True


def driver(o, expression):
    fcurve = o.driver_add("location", 2)
    fcurve.driver.type = "SCRIPTED"
    fcurve.driver.expression = expression


def bad(scene):
    camera(scene, active=False)
    scene.render.resolution_x, scene.render.resolution_percentage = 4, 1
    if hasattr(scene.render.image_settings, "media_type"):  # 5.0+: movies are a media type
        scene.render.image_settings.media_type = "VIDEO"
    scene.render.image_settings.file_format = "FFMPEG"
    o = obj(scene, "Cloth")
    o.modifiers.new("Cloth", "CLOTH")
    obj(scene, "Soft").modifiers.new("Softbody", "SOFT_BODY")
    emitter = obj(scene, "Emitter")
    emitter.modifiers.new("Particles", "PARTICLE_SYSTEM")
    domain = obj(scene, "Domain")
    fluid = domain.modifiers.new("Fluid", "FLUID")
    fluid.fluid_type = "DOMAIN"
    bpy.context.view_layer.objects.active = o
    bpy.ops.rigidbody.world_add()
    scene.rigidbody_world.collection = bpy.data.collections.new("RigidBodies")
    sim = gn_simulation(obj(scene, "GeoSim"))
    sim.bake_target = "DISK"
    sim.bake_directory = "//bakes"
    driver(obj(scene, "Driven"), "int(str(frame))")
    text = bpy.data.texts.new("rig_ui.py")
    text.write("print('hello')\n")
    text.use_module = True
    addon_tree()


def clean(scene):
    camera(scene)
    o = obj(scene, "Cloth")
    o.modifiers.new("Cloth", "CLOTH")
    driver(obj(scene, "Driven"), "frame * 2")
    bpy.context.view_layer.objects.active = o
    cache = o.modifiers["Cloth"].point_cache
    cache.frame_end = scene.frame_end
    with bpy.context.temp_override(object=o, active_object=o, point_cache=cache):
        bpy.ops.ptcache.bake(bake=True)


def sequencer(scene):
    scene.render.use_sequencer = True
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    try:
        strip = strips.new_effect("Red", "COLOR", channel=1, frame_start=1, length=scene.frame_end)
    except TypeError:  # 4.x takes frame_end
        strip = strips.new_effect("Red", "COLOR", channel=1, frame_start=1, frame_end=scene.frame_end + 1)
    strip.color = (0.8, 0.1, 0.1)
    text = bpy.data.texts.new("startup.py")  # a warning only: `check` exits with its own code
    text.write("print('hello')\n")
    text.use_module = True


def sequencer_driven(scene):
    """The sequencer scene plus an object with a Python driver (auto-run stays off on the
    worker): bpy 4.5 hung at exit after rendering it."""
    sequencer(scene)
    driver(obj(scene, "Driven"), "int(str(frame))")


def addon_props(scene):
    """Settings of an add-on the reading Blender does not have: a property group on the
    scene and a plain property on an object, registered only while the scene is made."""
    camera(scene)

    class AbrTestSettings(bpy.types.PropertyGroup):
        strength: bpy.props.FloatProperty(default=1.0)

    bpy.utils.register_class(AbrTestSettings)
    bpy.types.Scene.abr_test_settings = bpy.props.PointerProperty(type=AbrTestSettings)
    bpy.types.Object.abr_test_flag = bpy.props.BoolProperty()
    scene.abr_test_settings.strength = 3.0
    obj(scene, "Flagged").abr_test_flag = True


def with_camera(fn):
    def make(scene):
        camera(scene)
        fn(scene)

    return make


def marker_camera(scene):
    camera(scene, active=False)
    scene.timeline_markers.new("F_01", frame=1).camera = bpy.data.objects["Camera"]


def zero_size(scene):
    scene.render.resolution_x, scene.render.resolution_percentage = 4, 1


def movie(scene):
    if hasattr(scene.render.image_settings, "media_type"):  # 5.0+: movies are a media type
        scene.render.image_settings.media_type = "VIDEO"
    scene.render.image_settings.file_format = "FFMPEG"


def missing_texture(scene):
    mat = bpy.data.materials.new("Gone")
    mat.use_nodes = True
    img = bpy.data.images.new("gone", 4, 4)
    img.source, img.filepath = "FILE", "//tex/gone.png"
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = img
    obj(scene, "Textured").data.materials.append(mat)


def rigid_body(scene):
    bpy.context.view_layer.objects.active = obj(scene, "Body")
    bpy.ops.rigidbody.world_add()
    scene.rigidbody_world.collection = bpy.data.collections.new("RigidBodies")


def fluid(scene):
    obj(scene, "Domain").modifiers.new("Fluid", "FLUID").fluid_type = "DOMAIN"


def cloth_after_range(scene):
    """Unbaked cloth that starts simulating after the render range: nothing to carry over."""
    cache = obj(scene, "Cloth").modifiers.new("Cloth", "CLOTH").point_cache
    cache.frame_end, cache.frame_start = 40, scene.frame_end + 5


def gn_disk(scene):
    sim = gn_simulation(obj(scene, "GeoSim"))
    sim.bake_target, sim.bake_directory = "DISK", "//bakes"


def gn_packed(scene):
    """The default bake target since 4.2: whether it holds a bake is not readable from Python."""
    gn_simulation(obj(scene, "GeoSim")).bake_target = "PACKED"


def gn_packed_baked(scene):
    """A simulation baked into the file (the default target): the check reads the file to see it."""
    o = obj(scene, "GeoSim")
    mod = gn_simulation(o)
    bpy.context.view_layer.objects.active = o
    with bpy.context.temp_override(object=o, active_object=o, selected_objects=[o]):
        bpy.ops.object.geometry_node_bake_single(
            session_uid=o.session_uid, modifier_name=mod.name, bake_id=mod.bakes[0].bake_id
        )


def eevee(scene):
    engines = {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    scene.render.engine = "BLENDER_EEVEE" if "BLENDER_EEVEE" in engines else "BLENDER_EEVEE_NEXT"


def cycles_gpu(scene):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "GPU"


def material_driver(scene):
    """A Python driver on a shader node input: it lives in the material's own node tree."""
    mat = bpy.data.materials.new("Driven Wood")
    mat.use_nodes = True
    fcurve = mat.node_tree.nodes["Principled BSDF"].inputs["Roughness"].driver_add("default_value")
    fcurve.driver.type = "SCRIPTED"
    fcurve.driver.expression = "int(str(frame)) / 10"
    obj(scene, "Painted").data.materials.append(mat)


def script(scene):
    text = bpy.data.texts.new("rig_ui.py")
    text.write("print('hello')\n")
    text.use_module = True


#: scene name -> what makes it (each on a fresh scene with a camera unless it is about cameras)
FINDING_SCENES = {
    "no_camera": lambda scene: camera(scene, active=False),
    "marker_camera": marker_camera,
    "zero_size": with_camera(zero_size),
    "movie": with_camera(movie),
    "missing_texture": with_camera(missing_texture),
    "cloth": with_camera(lambda scene: obj(scene, "Cloth").modifiers.new("Cloth", "CLOTH")),
    "soft_body": with_camera(lambda scene: obj(scene, "Soft").modifiers.new("Softbody", "SOFT_BODY")),
    "particles": with_camera(lambda scene: obj(scene, "Emitter").modifiers.new("Particles", "PARTICLE_SYSTEM")),
    "rigid_body": with_camera(rigid_body),
    "geometry_nodes": with_camera(gn_disk),
    "cloth_after_range": with_camera(cloth_after_range),
    "gn_packed": with_camera(gn_packed),
    "gn_packed_baked": with_camera(gn_packed_baked),
    "python_driver": with_camera(lambda scene: driver(obj(scene, "Driven"), "int(str(frame))")),
    "material_driver": with_camera(material_driver),
    "script": with_camera(script),
    "addon_node": with_camera(lambda scene: addon_tree()),
    "addon_props": addon_props,
    "eevee": with_camera(eevee),
    "cycles_gpu": with_camera(cycles_gpu),
    "fluid": with_camera(fluid),  # last: Blender 4.5 can hang after evaluating a fluid domain
}


def findings(folder):
    for name, fn in {"clean": clean, **FINDING_SCENES}.items():
        fn(base())
        path = os.path.join(folder, f"{name}.blend")
        bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=True)
        print("made", path, flush=True)


def main(argv):
    out, kind = argv[0], argv[1]
    if kind == "findings":
        os.makedirs(out, exist_ok=True)
        findings(os.path.abspath(out))
        sys.stdout.flush()
        os._exit(0)
    scene = base()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if kind == "nested":
        from preflight_library_scenes import nested

        nested(scene, os.path.abspath(out))
    elif kind == "nested_moved":
        from preflight_library_scenes import nested_moved

        nested_moved(os.path.abspath(out))
        sys.stdout.flush()
        os._exit(0)
    else:
        {"bad": bad, "clean": clean, "sequencer": sequencer, "sequencer_driven": sequencer_driven}[kind](scene)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(out), relative_remap=True)
    sys.stdout.flush()
    os._exit(0)  # Blender 4.5 can hang on exit after a fluid domain was evaluated


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
