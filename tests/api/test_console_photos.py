"""The console shows a visit's photos (server-made thumbnails) once they arrive, within the coordinator's scope."""
import uuid

from tests.api.test_attachments import jpeg, put, visit_with
from tests.api.test_console import Console
from tests.conftest import op


def test_visit_page_shows_thumbnails_once_the_photo_arrives(world, app):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    data, sha = jpeg()
    vid = str(uuid.uuid4())
    tablet.push([op("visit", vid, data=visit_with(household["id"], (sha, "image/jpeg")))])
    console = Console(app.test_client())
    console.login()
    page = console.get(f"/console/visits/{vid}").get_data(as_text=True)
    assert "尚未上传" in page and f"/console/attachments/{sha}/thumbnail" not in page
    assert put(tablet, sha, data).status_code == 200
    page = console.get(f"/console/visits/{vid}").get_data(as_text=True)
    assert f"/console/attachments/{sha}/thumbnail" in page
    thumb = console.get(f"/console/attachments/{sha}/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and len(thumb.data) < len(data)
    assert console.get(f"/console/attachments/{sha}").data == data
    other = Console(app.test_client())
    other.login("coord2")
    assert other.get(f"/console/attachments/{sha}/thumbnail").status_code == 404
