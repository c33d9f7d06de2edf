from django.contrib.auth.models import User
from django.http import JsonResponse
from django.urls import path


def index(request):
    return JsonResponse({"users": User.objects.count()})


urlpatterns = [path("", index)]
